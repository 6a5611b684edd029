"""The scheduler's periodic work: SLA marks and escalations, closing, reopening, Open311 polling."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gateway import closure, scheduler
from gateway.auth import add_user
from gateway.models import Delivery, Request, utcnow

from .support.servers import wait_until
from .support.standins import (
    Answer,
    Open311StandIn,
    SlackStandIn,
    works_with_open311,
)
from .test_flow_end_to_end import load
from .test_slack_interactions import TOKEN


def submit(client, auth, name="request__pothole_fr") -> str:
    return client.post("/api/v1/requests", json=load(name), headers=auth).get_json()["code"]


def get(runtime, code) -> Request:
    with runtime.db.session() as session:
        request = session.query(Request).filter_by(code=code).one()
        request.events, request.deliveries, request.messages  # noqa: B018 - loaded before the session closes
        return request


def subjects(smtp_server, address) -> list[str]:
    return [str(m["Subject"]) for m in smtp_server.to(address)]


def enqueue(runtime, ids):
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)


# --- SLA -----------------------------------------------------------------------------------

def test_sla_approaching_then_breached_tells_department_and_escalates_to_supervisors(client, runtime, auth, smtp_server):
    add_user(runtime, "superviseure@bellerive.example.org", "supervisor", "a-long-password-1", "Sup")
    code = submit(client, auth)
    wait_until(lambda: smtp_server.to("travaux.publics@bellerive.example.org"))
    request = get(runtime, code)
    span = request.sla_due_at - request.created_at

    assert scheduler.check_sla(runtime, request.created_at + span * 0.5) == []
    enqueue(runtime, scheduler.check_sla(runtime, request.created_at + span * 0.85))
    assert get(runtime, code).sla_state == "approaching"
    assert wait_until(lambda: [s for s in subjects(smtp_server, "travaux.publics@") if s.startswith("Échéance proche")])
    assert scheduler.check_sla(runtime, request.created_at + span * 0.9) == []  # told once

    enqueue(runtime, scheduler.check_sla(runtime, request.sla_due_at + timedelta(minutes=1)))

    after = get(runtime, code)
    assert after.sla_state == "breached"
    assert [e.type for e in after.events if e.type.startswith(("sla_", "escalated"))] == [
        "sla_approaching", "sla_breached", "escalated"]
    assert wait_until(lambda: [s for s in subjects(smtp_server, "travaux.publics@") if s.startswith("Échéance dépassée")])
    escalation = wait_until(lambda: smtp_server.to("superviseure@bellerive.example.org"))
    assert code in escalation[0]["Subject"] and "Échéance dépassée" in escalation[0]["Subject"]
    assert after.status == "routed"  # an SLA mark is not a status change
    assert not [m for m in smtp_server.to("marie.tremblay@example.org") if "chéance" in str(m["Subject"])]


def test_sla_notice_on_slack_is_a_thread_reply(make_app, auth, smtp_server):
    slack = SlackStandIn(TOKEN).start()
    try:
        app = make_app(SLACK_BOT_TOKEN=TOKEN, SLACK_API_BASE=slack.base_url)
        runtime, client = app.extensions["runtime"], app.test_client()
        code = submit(client, auth, "request__tree_branch_fr")
        first = wait_until(lambda: slack.posts())[0]
        wait_until(lambda: any(d.state == "delivered" and d.target == "slack" for d in get(runtime, code).deliveries))

        enqueue(runtime, scheduler.check_sla(runtime, get(runtime, code).sla_due_at + timedelta(seconds=1)))

        reply = wait_until(lambda: slack.posts()[1:])[0]
        assert reply["thread_ts"] == "1764000000.000001" and reply["channel"] == first["channel"]
        assert reply["text"].startswith("Échéance dépassée — " + code)
    finally:
        slack.stop()


# --- closing and reopening -----------------------------------------------------------------

def test_resolved_request_is_closed_after_the_delay(client, runtime, auth):
    code = submit(client, auth)
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "resolved", "note": "Rebouché"})
    resolved_at = get(runtime, code).resolved_at

    assert closure.close_resolved(runtime, resolved_at + timedelta(hours=71)) == []
    assert get(runtime, code).status == "resolved"
    closure.close_resolved(runtime, resolved_at + timedelta(hours=73))

    closed = get(runtime, code)
    assert closed.status == "closed" and closed.closed_at is not None


def test_citizen_writing_after_closure_reopens_within_the_window(client, runtime, auth, smtp_server):
    code = submit(client, auth)
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "resolved"})
    closure.close_resolved(runtime, utcnow() + timedelta(days=4))
    assert get(runtime, code).status == "closed"
    again = {**load("request__pothole_fr"), "description": f"Suivi {code} : le trou est revenu après la pluie."}

    answer = client.post("/api/v1/requests", json=again, headers=auth).get_json()

    assert answer["code"] == code
    reopened = get(runtime, code)
    assert reopened.status == "in_progress"
    assert [e for e in reopened.events if e.type == "status_changed"][-1].actor == "citizen"
    notice = wait_until(lambda: [s for s in subjects(smtp_server, "travaux.publics@") if s.startswith("Demande rouverte")])
    assert code in notice[0]


@pytest.mark.parametrize("words, reopens", [
    ("Merci beaucoup !", False), ("Thanks, great job", False), ("merci à vous", False),
    ("Merci, mais le trou est revenu après la pluie", True), ("Le trou est revenu.", True),
])
def test_a_thank_you_after_resolution_does_not_reopen(client, runtime, auth, words, reopens):
    code = submit(client, auth)
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "resolved"})

    client.post("/api/v1/requests", headers=auth,
                json={**load("request__pothole_fr"), "description": f"{words}\n\nRe: {code}"})

    assert get(runtime, code).status == ("in_progress" if reopens else "resolved")
    assert [m.body for m in get(runtime, code).messages if m.direction == "in"][-1].startswith(words)


def test_citizen_writing_long_after_closure_starts_a_linked_request(client, runtime, auth):
    code = submit(client, auth)
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "resolved"})
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "closed"})
    with runtime.db.session() as session:
        session.query(Request).filter_by(code=code).one().closed_at = utcnow() - timedelta(days=30)
    again = {**load("request__pothole_fr"), "description": f"Re {code} : le nid-de-poule est de retour, encore plus gros."}

    answer = client.post("/api/v1/requests", json=again, headers=auth).get_json()

    assert answer["code"] != code and answer["status"] == "routed"
    detail = client.get(f"/api/v1/requests/{answer['code']}", headers=auth).get_json()
    assert detail["related_to"] == code
    assert get(runtime, code).status == "closed"
    assert "reported_again" in [e.type for e in get(runtime, code).events]


# --- Open311 polling -------------------------------------------------------------------------

@pytest.fixture
def open311():
    server = Open311StandIn("works-key").start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def open311_app(request, make_app, tmp_path, open311):
    """Public works also delivers to its Open311 work-order server (fan-out with e-mail); on
    SQLite and on PostgreSQL, where polling locks the requests it changes."""
    folder = works_with_open311(tmp_path / "config", open311.endpoint, "WORKS_OPEN311_KEY", "updates: true, ")
    database = {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}
    # No background scheduler pass here: the tests run the polling themselves.
    return make_app(GATEWAY_CONFIG_DIR=str(folder), WORKS_OPEN311_KEY="works-key", GATEWAY_OPEN311_POLL_SECONDS=0,
                    GATEWAY_SWEEP_SECONDS=3600, GATEWAY_HTTP_TIMEOUT_SECONDS=1, **database)


def delivered_open311(runtime, code) -> Delivery:
    return wait_until(lambda: next((d for d in get(runtime, code).deliveries
                                    if d.target == "open311" and d.state == "delivered"), None))


def test_open311_status_polled_back_to_citizen(open311_app, open311, auth, smtp_server):
    runtime, client = open311_app.extensions["runtime"], open311_app.test_client()
    code = submit(client, auth)
    delivery = delivered_open311(runtime, code)
    assert delivery.external_id == "900001"
    assert open311.to("/v2/requests.json")[0].form()["service_code"] == "POTHOLE"

    assert scheduler.poll_open311(runtime) == []  # still "open" over there
    open311.set_status("900001", "closed", "Réparé par l'équipe de nuit.")
    enqueue(runtime, scheduler.poll_open311(runtime))

    request = get(runtime, code)
    assert request.status == "resolved"
    change = [e for e in request.events if e.type == "status_changed"][-1]
    assert change.actor == "open311:travaux_publics" and change.data["external_status_code"] == "closed"
    mail = wait_until(lambda: [m for m in smtp_server.to("marie.tremblay@example.org") if "résolue" in m["Subject"]])
    assert "Réparé par l'équipe de nuit." in mail[0].get_body(("plain",)).get_content()
    assert scheduler.poll_open311(runtime) == []  # the same status is not applied twice

    client.post("/api/v1/requests", headers=auth,  # the citizen: it is back; "closed" over there stays
                json={**load("request__pothole_fr"), "description": f"Le trou est revenu ({code})"})
    assert get(runtime, code).status == "in_progress"
    scheduler.poll_open311(runtime)
    assert get(runtime, code).status == "in_progress"  # not resolved again by a stale remote status


def test_open311_updates_extension_brings_in_progress(open311_app, open311, auth):
    runtime, client = open311_app.extensions["runtime"], open311_app.test_client()
    code = submit(client, auth)
    delivered_open311(runtime, code)
    open311.update_items = [{"update_id": "1", "service_request_id": "900001", "status": "IN_PROGRESS",
                             "updated_datetime": utcnow().isoformat(), "description": "Équipe assignée"}]

    scheduler.poll_open311(runtime)
    assert get(runtime, code).status == "in_progress"

    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "needs_info", "note": "Où ?"})
    scheduler.poll_open311(runtime)  # the same update, read again in the overlapping window
    assert get(runtime, code).status == "needs_info"


def test_open311_token_is_resolved_before_polling(open311_app, open311, auth):
    open311.tokens = True
    runtime, client = open311_app.extensions["runtime"], open311_app.test_client()
    code = submit(client, auth)
    assert delivered_open311(runtime, code).external_id == "token:tok-900001"

    scheduler.poll_open311(runtime)
    assert delivered_open311(runtime, code).external_id == "token:tok-900001"  # not created yet there
    open311.pending_tokens["tok-900001"] = "900001"
    scheduler.poll_open311(runtime)

    assert delivered_open311(runtime, code).external_id == "900001"


@pytest.mark.parametrize("answer", [
    Answer(200, "{not json"), Answer(200, [{"status": "closed"}]), Answer(500, ""), Answer(200, [], hang=2),
])
def test_open311_bad_answers_change_nothing_and_are_shown_in_health(open311_app, open311, auth, answer):
    runtime, client = open311_app.extensions["runtime"], open311_app.test_client()
    code = submit(client, auth)
    delivered_open311(runtime, code)
    open311.set_status("900001", "closed", "done")
    open311.fail_next("/v2/requests.json", answer)

    assert scheduler.poll_open311(runtime) == []

    assert get(runtime, code).status == "routed"
    assert "polling" in runtime.health["sink:open311"]["error"]
    enqueue(runtime, scheduler.poll_open311(runtime))  # the next pass gets the real answer
    assert get(runtime, code).status == "resolved"


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_run_once_does_every_step(request, make_app, auth, smtp_server, database):
    app = make_app(**({} if database == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}))
    runtime, client = app.extensions["runtime"], app.test_client()
    code, open_one = submit(client, auth), submit(client, auth, "request__streetlight_en")
    client.post(f"/api/v1/requests/{code}/status", headers=auth, json={"status": "resolved"})

    scheduler.run_once(runtime, utcnow() + timedelta(days=60))  # resolved 5 days before, and every SLA over

    assert get(runtime, code).status == "closed"
    late = get(runtime, open_one)
    assert late.sla_state == "breached" and "sla_breached" in [e.type for e in late.events]
