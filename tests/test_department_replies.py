"""A department answering the routed e-mail with a status word updates the request.

The replies reach the gateway through its mailbox; the IMAP channel is a separate adapter,
so here a minimal stand-in parser (Python's email package) turns the .eml fixtures into the
CitizenMessage that channel produces, and the real pipeline does the rest.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from adapters import registry
from adapters.base import CitizenMessage, Contact
from gateway import pipeline
from gateway.intake import store_inbound
from gateway.models import Request
from gateway.replies import status_word

from .conftest import FIXTURES
from .support.servers import wait_until
from .test_flow_end_to_end import load


class EmlParser:
    name = "email"

    def parse(self, raw) -> CitizenMessage:
        message = email.message_from_bytes(raw.body, policy=email.policy.default)
        sender = email.utils.parseaddr(str(message["From"]))[1]
        return CitizenMessage(channel="email", text=message.get_body(("plain",)).get_content(),
                              subject=str(message["Subject"]), contact=Contact(email=sender),
                              in_reply_to=str(message["In-Reply-To"] or "") or None)


@pytest.fixture
def email_in(monkeypatch):
    monkeypatch.setitem(registry.INBOUND, "email", lambda settings: EmlParser())


def receive(runtime, fixture: str, code: str) -> list[int]:
    body = (FIXTURES / "email_smtp" / fixture).read_text().replace("{code}", code).encode()
    inbound_id, _ = store_inbound(runtime, "email", f"{fixture}:{code}", body, "message/rfc822")
    ids = pipeline.process_inbound(runtime, inbound_id)
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)
    return ids


def request(runtime, code) -> Request:
    with runtime.db.session() as session:
        found = session.query(Request).filter_by(code=code).one()
        found.events, found.messages  # noqa: B018
        return found


def test_resolu_reply_resolves_and_citizen_gets_the_closing_note(email_in, client, runtime, auth, smtp_server):
    code = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()["code"]

    receive(runtime, "reply__resolu_fr.eml", code)

    found = request(runtime, code)
    assert found.status == "resolved"
    change = [e for e in found.events if e.type == "status_changed"][-1]
    assert change.actor == "email:travaux_publics"
    assert change.data["note"] == "le trou a été rebouché à l'asphalte froid ce matin.\nMerci du signalement."
    mail = wait_until(lambda: [m for m in smtp_server.to("marie.tremblay@example.org") if "résolue" in m["Subject"]])
    assert "rebouché à l'asphalte froid" in mail[0].get_body(("plain",)).get_content()
    assert "a écrit" not in mail[0].get_body(("plain",)).get_content()  # the quoted original stays out
    assert len([m for m in found.messages if m.direction == "in"]) == 1  # not a citizen message


def test_status_word_in_subject_and_plain_question(email_in, client, runtime, auth):
    code = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()["code"]

    receive(runtime, "reply__en_cours_subject_fr.eml", code)
    assert request(runtime, code).status == "in_progress"

    receive(runtime, "reply__question_no_status_en.eml", code)
    found = request(runtime, code)
    assert found.status == "in_progress"
    assert [e.data["text"] for e in found.events if e.type == "note"] == ["Is this the north or the south side of the street?"]


def test_same_reply_from_a_stranger_is_not_a_department_update(email_in, client, runtime, auth):
    code = client.post("/api/v1/requests", json=load("request__pothole_fr"), headers=auth).get_json()["code"]
    body = (FIXTURES / "email_smtp" / "reply__resolu_fr.eml").read_text().replace("{code}", code)
    forged = body.replace("travaux.publics@bellerive.example.org", "someone@example.org")
    inbound_id, _ = store_inbound(runtime, "email", "forged", forged.encode(), "message/rfc822")

    pipeline.process_inbound(runtime, inbound_id)

    assert request(runtime, code).status == "routed"


@pytest.mark.parametrize("subject, body, status, note", [
    ("RE: [R-2026-4821735] Nid-de-poule", "Résolu.\nTrou rebouché.", "resolved", "Trou rebouché."),
    ("RE: [R-2026-4821735] Nid-de-poule", "resolue - vitre changée", "resolved", "vitre changée"),
    ("Re: Resolved [R-2026-4821735]", "The light works again.", "resolved", "The light works again."),
    ("TR: RE: En cours", "", "in_progress", ""),
    ("Re: [R-2026-4821735]", "In progress: crew assigned", "in_progress", "crew assigned"),
    ("Re: [R-2026-4821735]", "Pas pour nous, voir Hydro.", "decline", "voir Hydro."),
    ("Re: [R-2026-4821735]", "Non résolu pour l'instant", None, "Non résolu pour l'instant"),
    ("Re: [R-2026-4821735] résolution prévue", "On regarde.", None, "On regarde."),
])
def test_status_words(subject, body, status, note):
    assert status_word(subject, body) == (status, note)
