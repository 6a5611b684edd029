"""Citizens' personal data is kept GATEWAY_RETENTION_DAYS after their last request ended, then
erased (gateway/retention.py): name, contact points, where replies went, raw payloads. The
requests, what was written in them and every count stay."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, update

from gateway import retention
from gateway.cli import main
from gateway.models import (
    Citizen,
    ContactPoint,
    Delivery,
    Follower,
    InboundMessage,
    Message,
    Request,
    utcnow,
)
from tests.support.servers import wait_until
from tests.support.staff import get_request, make_user, page, sign_in, submit

YEARS_AGO = timedelta(days=3 * 365)
SIGNED = ("Nid-de-poule profond devant le parc. Rappelez-moi au (819) 555-0142 ou à marie@example.org avant 17 h "
          "le 2026-11-21. Marie Tremblay")


@pytest.fixture
def app(make_app):
    """Without the embedded scheduler's thread, which would run the passes on its own."""
    return make_app(GATEWAY_INLINE_JOBS=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def on_both(request, make_app):
    """The app on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        return make_app(GATEWAY_INLINE_JOBS=False)
    return make_app(GATEWAY_INLINE_JOBS=False, DATABASE_URL=request.getfixturevalue("pg_url"))


def _report(runtime, email: str, phone: str | None = None, text: str = "Nid-de-poule profond devant le parc") -> str:
    citizen = {"name": "Marie Tremblay", "email": email, **({"phone": phone} if phone else {})}
    return submit(runtime, {"channel": "web", "description": text, "citizen": citizen,
                            "location": {"address": "145 Wellington"}})


def _ended_long_ago(runtime, code: str, ago: timedelta = YEARS_AGO) -> None:
    """The request, its messages, deliveries and raw payloads and its citizen, as if it had
    been closed ``ago``."""
    def settled() -> bool:  # its deliveries, sent by the app's job threads, done first: one
        # finishing afterwards would record its message now, and the citizen would not be due
        with runtime.db.session() as db:
            return not db.scalar(select(func.count()).select_from(Delivery).join(Request).where(
                Request.code == code, Delivery.state.in_(("pending", "sending"))))

    wait_until(settled)
    then = utcnow() - ago
    with runtime.db.session() as db:
        request = db.scalar(select(Request).where(Request.code == code))
        db.execute(update(Request).where(Request.id == request.id).values(
            status="closed", created_at=then, updated_at=then, resolved_at=then, closed_at=then))
        db.execute(update(Message).where(Message.request_id == request.id).values(created_at=then))
        db.execute(update(Delivery).where(Delivery.request_id == request.id).values(  # sent back then
            state="delivered", created_at=then))
        db.execute(update(InboundMessage).where(InboundMessage.request_id == request.id).values(received_at=then))
        db.execute(update(Citizen).where(Citizen.id == request.citizen_id).values(created_at=then))


def _purge(runtime) -> dict:
    """Both passes with the default period (the scheduler's, without its once-an-hour pace)."""
    now = utcnow()
    return retention.run(runtime, now - timedelta(days=float(runtime.settings["GATEWAY_RETENTION_DAYS"])), now)


def _citizen(runtime, code: str) -> tuple[Citizen, list[str]]:
    with runtime.db.session() as db:
        citizen = db.get(Citizen, get_request(runtime, code).citizen_id)
        return citizen, [c.value for c in citizen.contacts]


def test_a_citizen_whose_requests_ended_long_ago_is_forgotten_and_the_requests_kept(on_both):
    runtime, client = on_both.extensions["runtime"], on_both.test_client()
    old = _report(runtime, "marie@example.org", "(819) 555-0142", text=SIGNED)
    recent = _report(runtime, "paul@example.org", text="Lampadaire éteint depuis lundi, appelez-moi au 819-555-0177")
    _ended_long_ago(runtime, old)

    done = _purge(runtime)

    assert done == {"citizens": 1, "payloads": 1}
    forgotten, points = _citizen(runtime, old)
    assert forgotten.name is None and forgotten.forgotten_at is not None and points == []
    kept, kept_points = _citizen(runtime, recent)
    assert kept.name == "Marie Tremblay" and kept_points == ["paul@example.org"]
    request = get_request(runtime, old)
    erased = ("Nid-de-poule profond devant le parc. Rappelez-moi au [coordonnée effacée] ou à "
              "[coordonnée effacée] avant 17 h le 2026-11-21. [nom effacé]")
    assert request.description == erased and request.address == "145, rue Wellington"  # their words, no contact
    assert get_request(runtime, recent).description.endswith("appelez-moi au 819-555-0177")  # not due yet
    with runtime.db.session() as db:
        assert db.scalars(select(Message.body).where(Message.request_id == request.id,
                                                     Message.direction == "in")).all() == [erased]
        payload = db.scalar(select(InboundMessage).where(InboundMessage.request_id == request.id))
        assert (payload.body, payload.headers, payload.sender) == (b"", {}, None)
        told = db.scalars(select(Delivery).where(Delivery.request_id == request.id, Delivery.purpose == "notify")).all()
        assert told and all(d.settings["message"]["to"] is None and d.settings["message"]["text"] for d in told)
        assert "marie@example.org" not in json.dumps([d.settings for d in db.scalars(select(Delivery))])
    sign_in(client, make_user(runtime, "agent"))
    shown = page(client, f"/inbox/r/{old}?lang=fr")
    assert 'id="forgotten"' in shown and "marie@example.org" not in shown
    assert old not in page(client, "/inbox/?q=marie@example.org")  # no longer found by contact

    assert _purge(runtime) == {"citizens": 0, "payloads": 0}  # done once


def test_a_citizen_with_anything_open_or_recent_is_kept(runtime):
    """An old request ended, but another is recent; or the citizen follows an open request as
    a duplicate's reporter; or wrote lately from their chat: nothing of them is erased."""
    both = _report(runtime, "deux@example.org")
    _report(runtime, "deux@example.org", text="Lampadaire éteint depuis lundi")
    follower = _report(runtime, "suiveur@example.org", text="Graffiti sur le mur de l'école")
    master = _report(runtime, "maitre@example.org", text="Feu de circulation en panne")
    _ended_long_ago(runtime, both)
    _ended_long_ago(runtime, follower)
    with runtime.db.session() as db:
        db.add(Follower(request_id=get_request(runtime, master).id, citizen_id=get_request(runtime, follower).citizen_id))

    assert _purge(runtime)["citizens"] == 0
    assert _citizen(runtime, both)[1] == ["deux@example.org"] and _citizen(runtime, follower)[1] == ["suiveur@example.org"]


def test_a_citizen_forgotten_who_writes_again_is_someone_new(runtime):
    old = _report(runtime, "retour@example.org")
    _ended_long_ago(runtime, old)
    _purge(runtime)

    again = _report(runtime, "retour@example.org", text="Un autre nid-de-poule rue Champlain")

    assert get_request(runtime, again).citizen_id != get_request(runtime, old).citizen_id
    assert _citizen(runtime, again)[1] == ["retour@example.org"] and _citizen(runtime, old)[1] == []


def test_without_a_period_nothing_is_erased(make_app):
    keep_all_app = make_app(GATEWAY_RETENTION_DAYS=0, GATEWAY_INLINE_JOBS=False)
    keep_all = keep_all_app.extensions["runtime"]
    old = _report(keep_all, "garde@example.org")
    _ended_long_ago(keep_all, old)

    assert retention.purge(keep_all) == {"citizens": 0, "payloads": 0}
    assert _citizen(keep_all, old)[1] == ["garde@example.org"]
    client = keep_all_app.test_client()
    sign_in(client, make_user(keep_all, "admin"))
    assert "Conservés sans limite" in page(client, "/admin/health?lang=fr")


def test_the_scheduler_runs_the_passes_once_an_hour(runtime):
    first = _report(runtime, "un@example.org")
    second = _report(runtime, "deux@example.org", text="Lampadaire éteint depuis lundi")
    _ended_long_ago(runtime, first)
    now = utcnow()
    assert retention.purge(runtime, now)["citizens"] == 1
    _ended_long_ago(runtime, second)
    assert retention.purge(runtime, now + timedelta(minutes=59))["citizens"] == 0  # within the hour
    assert retention.purge(runtime, now + timedelta(hours=1))["citizens"] == 1


def test_the_command_line_counts_purges_and_forgets_one_citizen_on_request(runtime, settings):
    env = {k: str(v) for k, v in settings.items() if v is not None}
    old = _report(runtime, "ancien@example.org")
    asking = _report(runtime, "moi@example.org", "819-555-0177", "Lampadaire éteint depuis lundi")  # still open
    _ended_long_ago(runtime, old)

    for wrong in ("-3", "nan", "0"):
        refused = CliRunner().invoke(main, ["privacy", "purge", "--days", wrong], env=env)
        assert refused.exit_code == 1 and "nothing was erased" in refused.output
    counted = CliRunner().invoke(main, ["privacy", "purge", "--dry-run"], env=env)
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.output)["citizens_forgotten"] == 1 and _citizen(runtime, old)[1] == ["ancien@example.org"]
    purged = CliRunner().invoke(main, ["privacy", "purge"], env=env)
    assert json.loads(purged.output)["citizens_forgotten"] == 1 and _citizen(runtime, old)[1] == []

    forgotten = CliRunner().invoke(main, ["privacy", "forget", "(819) 555-0177"], env=env)
    assert forgotten.exit_code == 0, forgotten.output
    assert _citizen(runtime, asking)[1] == [] and get_request(runtime, asking).status != "closed"
    unknown = CliRunner().invoke(main, ["privacy", "forget", "personne@example.org"], env=env)
    assert unknown.exit_code == 1 and "nothing was changed" in unknown.output
    with runtime.db.session() as db:
        assert db.scalar(select(func.count()).select_from(ContactPoint)) == 0


def test_an_administrator_erases_a_citizen_who_asks_from_the_request_page(runtime, client):
    from tests.support.staff import post_form

    code = _report(runtime, "efface@example.org", "(819) 555-0199", "Lampadaire éteint depuis lundi")
    sign_in(client, make_user(runtime, "agent"))
    assert 'id="forget-form"' not in page(client, f"/inbox/r/{code}")  # administrators only
    assert post_form(client, f"/inbox/r/{code}/forget", {"confirm": "yes"}, f"/inbox/r/{code}").status_code == 403
    sign_in(client, make_user(runtime, "admin"))

    unticked = post_form(client, f"/inbox/r/{code}/forget?lang=fr", {}, f"/inbox/r/{code}")
    assert "Cochez la case" in page(client, unticked.headers["Location"])
    assert sorted(_citizen(runtime, code)[1]) == ["+18195550199", "efface@example.org"]  # nothing erased yet
    with runtime.db.session() as db:  # its acknowledgement still waiting (the mail server down)
        db.execute(update(Delivery).where(Delivery.purpose == "notify").values(state="pending"))
    post_form(client, f"/inbox/r/{code}/forget", {"confirm": "yes"}, f"/inbox/r/{code}")

    citizen, points = _citizen(runtime, code)
    assert points == [] and citizen.name is None and citizen.forgotten_at is not None
    shown = page(client, f"/inbox/r/{code}?lang=fr")
    assert "effacés à sa demande" in shown and 'id="forget-form"' not in shown
    health = page(client, "/admin/health?lang=fr")  # the administrators see the policy at work
    assert "Conservés 730 jours" in health and "1 citoyen oublié jusqu'ici (le dernier le " in health
    assert get_request(runtime, code).status not in ("closed", "rejected")  # the work goes on
    with runtime.db.session() as db:
        request_id = get_request(runtime, code).id
        assert db.scalar(select(InboundMessage).where(InboundMessage.request_id == request_id)).body == b""
        waiting = db.scalars(select(Delivery).where(Delivery.request_id == request_id, Delivery.purpose == "notify")).all()
        assert waiting and {(d.state, d.last_error) for d in waiting} == {("dead", retention.FORGOTTEN)}  # never sent

    # An administrator sending one again from the dead letters: refused for good, saying why.
    from gateway import outbox
    from tests.support.servers import wait_until

    assert outbox.retry_dead(runtime, waiting[0].id, "admin:test")

    def retried():
        with runtime.db.session() as db:
            again = db.get(Delivery, waiting[0].id)
            return again if again.state == "dead" and again.last_error else None

    assert "no address to send to" in wait_until(retried).last_error


def test_forgetting_a_citizen_keeps_their_message_still_waiting_to_be_processed(runtime):
    """An accepted message is never lost: a text of theirs not processed yet keeps its payload
    (the pipeline still has to read it); the processed ones are erased."""
    code = _report(runtime, "attente@example.org", "(819) 555-0123")
    with runtime.db.session() as db:
        db.add(InboundMessage(channel="twilio_sms", provider_id="SM-waiting", body=b"Body=encore", headers={},
                              content_type="application/x-www-form-urlencoded", sender="+18195550123"))
        citizen_id = get_request(runtime, code).citizen_id
    with runtime.db.session() as db:
        retention.forget(db, citizen_id)

    with runtime.db.session() as db:
        waiting = db.scalar(select(InboundMessage).where(InboundMessage.provider_id == "SM-waiting"))
        processed = db.scalar(select(InboundMessage).where(InboundMessage.request_id == get_request(runtime, code).id))
        assert (waiting.body, waiting.sender) == (b"Body=encore", "+18195550123") and processed.body == b""
