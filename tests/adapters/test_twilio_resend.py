"""An SMS whose answer was lost is not sent twice: Twilio's Messages API has no idempotency key,
so on a retry the adapter looks for the message an earlier attempt got accepted (the outbox
against the Twilio stand-in, through the real twilio client)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from adapters.base import OutboundMessage
from adapters.channels.twilio import TwilioSmsChannel
from gateway import outbox
from gateway.models import Delivery, Message, Request, utcnow
from gateway.status import change_status

from ..support.servers import wait_until
from ..support.twilio import FROM_NUMBER, MESSAGES, load, post, twilio_settings

MARIE = "+15145550142"  # the sender of the sms__pothole_fr fixture
LUC = "+15145550143"
SERVICE = "MG" + "1" * 32


def sms_deliveries(runtime) -> list[Delivery]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Delivery).where(Delivery.target == "sms").order_by(Delivery.id)))


def settled(runtime) -> list[Delivery] | None:
    rows = sms_deliveries(runtime)
    return rows if rows and all(d.state in ("delivered", "dead") for d in rows) else None


def lookups(twilio) -> list:
    return [r for r in twilio.requests if r.method == "GET" and r.path.startswith(MESSAGES)]


# --- Through the outbox ------------------------------------------------------------------------

def test_acknowledgement_whose_answer_was_lost_reaches_the_citizen_once(twilio_client, twilio_runtime, twilio, auth):
    twilio.drop_answers = 1  # Twilio takes the first send, the connection drops before its answer
    created = twilio_client.post("/api/v1/requests", headers=auth, json={
        "description": "Lampadaire éteint devant le 12 rue des Érables", "citizen": {"phone": "514-555-0143"}})
    assert created.status_code == 201

    [delivery] = wait_until(lambda: settled(twilio_runtime), timeout=15)

    texts = twilio.sent(LUC)
    assert len(texts) == 1 and created.get_json()["code"] in texts[0]["Body"]
    [held] = [m for m in twilio.messages if m["to"] == LUC]
    assert (delivery.state, delivery.attempts, delivery.external_id) == ("delivered", 2, held["sid"])
    assert len(lookups(twilio)) == 1  # only the retry looked
    with twilio_runtime.db.session() as session:
        request = session.scalar(select(Request).where(Request.code == created.get_json()["code"]))
        assert request.acknowledged_at is not None
        assert session.scalar(select(Message.external_id).where(Message.direction == "out")) == held["sid"]


def test_status_update_whose_answer_was_lost_reaches_the_citizen_once(twilio_client, twilio_runtime, twilio):
    from normalizer.codes import find_codes

    code = find_codes(post(twilio_client, load("twilio_sms", "sms__pothole_fr")).get_data(as_text=True), "R")[0]
    wait_until(lambda: _request(twilio_runtime, code))
    twilio.drop_answers = 1
    with twilio_runtime.db.session() as session:
        ids = change_status(session, twilio_runtime, _request(twilio_runtime, code, session), "in_progress",
                            "agent:test", "Équipe en route.")
    for delivery_id in ids:
        twilio_runtime.jobs.enqueue("deliver", delivery_id)

    [delivery] = wait_until(lambda: settled(twilio_runtime), timeout=15)

    texts = twilio.sent(MARIE)
    assert len(texts) == 1 and "Équipe en route." in texts[0]["Body"]
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert delivery.external_id == [m for m in twilio.messages if m["to"] == MARIE][0]["sid"]


def test_worker_killed_after_twilio_took_the_message_does_not_resend_it(make_app, twilio, auth):
    app = make_app(GATEWAY_INLINE_JOBS=False, **twilio_settings(twilio))  # no sweeper: the test runs the outbox
    runtime = app.extensions["runtime"]
    app.test_client().post("/api/v1/requests", headers=auth, json={
        "description": "Lampadaire éteint devant le 12 rue des Érables", "citizen": {"phone": "514-555-0143"}})
    wait_until(lambda: settled(runtime))  # the acknowledgement, sent as usual
    with runtime.db.session() as session:  # then an update, queued without a job to send it
        update = {"to": LUC, "text": "Votre demande est en cours.", "language": "fr", "subject": None}
        added = outbox.add_delivery(session, session.scalars(select(Request)).one(), "notify", "sms",
                                    {"kind": "update", "message": update}, "update:test").id
    now = utcnow()
    with runtime.db.engine.begin() as connection:  # a worker claims it with a short lease...
        [claimed] = outbox.claim_batch(connection, now, now + timedelta(seconds=1), 20)
    runtime.outbound("sms").send(OutboundMessage(  # ...sends it as the outbox does, and dies
        idempotency_key=claimed.idempotency_key, attempt=claimed.attempts, queued_at=claimed.created_at,
        **claimed.settings["message"]))

    assert outbox.run_batch(runtime) == {}  # nobody sends it while the lease runs
    wait_until(lambda: utcnow() > now + timedelta(seconds=1), timeout=5)
    assert outbox.run_batch(runtime) == {added: "delivered"}

    assert [t["Body"] for t in twilio.sent(LUC)].count(update["text"]) == 1
    delivery = sms_deliveries(runtime)[-1]
    assert (delivery.attempts, delivery.external_id) == (2, twilio.messages[-1]["sid"])


def test_first_send_refused_and_lookup_failing_still_sends_once(twilio_client, twilio_runtime, twilio, auth):
    twilio.failures.append((503, {"code": 20503, "message": "Service unavailable", "status": 503}))
    twilio.list_failures.append((500, {"code": 20500, "message": "Internal Server Error", "status": 500}))
    twilio_client.post("/api/v1/requests", headers=auth, json={
        "description": "Lampadaire éteint devant le 12 rue des Érables", "citizen": {"phone": "514-555-0143"}})

    [delivery] = wait_until(lambda: settled(twilio_runtime), timeout=15)

    assert len(twilio.sent(LUC)) == 2  # the refused POST, then the one Twilio took
    assert len(twilio.messages) == 1 and delivery.external_id == twilio.messages[0]["sid"]
    assert (delivery.state, delivery.attempts) == ("delivered", 2)
    assert len(lookups(twilio)) == 1


def test_dead_letter_retried_by_an_administrator_looks_before_sending(make_app, twilio, auth):
    """The delivery died of a lost answer (one attempt allowed) although Twilio took the SMS:
    the administrator's retry finds it and sends nothing more."""
    app = make_app(**twilio_settings(twilio), GATEWAY_MAX_ATTEMPTS=1)
    runtime = app.extensions["runtime"]
    twilio.drop_answers = 1
    app.test_client().post("/api/v1/requests", headers=auth, json={
        "description": "Lampadaire éteint devant le 12 rue des Érables", "citizen": {"phone": "514-555-0143"}})
    [dead] = wait_until(lambda: settled(runtime), timeout=15)
    assert dead.state == "dead" and len(twilio.sent(LUC)) == 1 and lookups(twilio) == []

    assert outbox.retry_dead(runtime, dead.id, "admin:test")

    [delivery] = wait_until(lambda: settled(runtime), timeout=15)
    assert (delivery.state, delivery.external_id) == ("delivered", twilio.messages[0]["sid"])
    assert len(twilio.sent(LUC)) == 1 and len(lookups(twilio)) == 1


def _request(runtime, code: str, session=None):
    if session is not None:
        return session.scalar(select(Request).where(Request.code == code))
    with runtime.db.session() as session:
        return session.scalar(select(Request).where(Request.code == code))


# --- The lookup, row by row --------------------------------------------------------------------

TEXT = "Ville de Bellerive 311 — R-2026-4821735 : en cours."
NOW = datetime.now(UTC)


def retry(text: str = TEXT, attempt: int = 2, queued_at: datetime | None = None) -> OutboundMessage:
    return OutboundMessage(to=MARIE, text=text, language="fr", idempotency_key="update:R-2026-4821735:2",
                           attempt=attempt, queued_at=queued_at or datetime.now(UTC) - timedelta(seconds=30))


# (the message Twilio already holds for MARIE, whether it stands for this one)
HELD = [
    pytest.param({}, True, id="queued-since-the-message-was-queued"),
    pytest.param({"status": "delivered"}, True, id="delivered"),
    pytest.param({"status": "sent"}, True, id="sent"),
    pytest.param({"created": NOW - timedelta(days=3), "status": "delivered"}, False, id="same-text-three-days-ago"),
    pytest.param({"created": NOW - timedelta(minutes=10)}, False, id="same-text-before-it-was-queued"),
    pytest.param({"status": "failed"}, False, id="failed"),
    pytest.param({"status": "undelivered"}, False, id="undelivered"),
    pytest.param({"status": "canceled"}, False, id="canceled"),
    pytest.param({"body": TEXT + " Merci."}, False, id="another-text"),
    pytest.param({"direction": "outbound-reply"}, False, id="a-twiml-reply"),
    pytest.param({"to": LUC}, False, id="to-someone-else"),
    pytest.param({"from_": "+18195550199"}, False, id="from-another-number"),
]


@pytest.mark.parametrize("held, same", HELD)
def test_retry_takes_an_earlier_send_for_its_own_only_when_it_is_one(twilio, held, same):
    fields = {"to": MARIE, "body": TEXT, "status": "queued", **held}
    earlier = twilio.add_message(fields.pop("to"), fields.pop("body"), **fields)

    receipt = TwilioSmsChannel.from_settings(twilio_settings(twilio)).send(retry())

    assert len(twilio.sent(MARIE)) == (0 if same else 1)
    assert (receipt.external_id == earlier["sid"]) is same
    [lookup] = lookups(twilio)
    assert lookup.form == {"To": [MARIE], "From": [FROM_NUMBER], "PageSize": ["20"]}


def test_newest_earlier_send_among_older_ones_is_found(twilio):
    for days in (40, 9, 2):
        twilio.add_message(MARIE, TEXT, created=NOW - timedelta(days=days))
    earlier = twilio.add_message(MARIE, TEXT, status="queued")
    for i in range(5):  # other messages since, to other numbers and to her
        twilio.add_message(LUC, TEXT)
        twilio.add_message(MARIE, f"Autre message {i}")

    receipt = TwilioSmsChannel.from_settings(twilio_settings(twilio)).send(retry())

    assert receipt.external_id == earlier["sid"] and twilio.sent() == []


def test_text_cut_at_1600_is_compared_as_sent(twilio):
    channel = TwilioSmsChannel.from_settings(twilio_settings(twilio))
    first = channel.send(retry(text="é" * 2000, attempt=1))

    assert channel.send(retry(text="é" * 2000)).external_id == first.external_id
    assert len(twilio.sent(MARIE)) == 1


def test_first_attempt_sends_without_looking(twilio):
    twilio.add_message(MARIE, TEXT, status="queued")
    TwilioSmsChannel.from_settings(twilio_settings(twilio)).send(retry(attempt=1))
    assert len(twilio.sent(MARIE)) == 1 and lookups(twilio) == []


def test_retry_without_a_queued_time_sends_without_looking(twilio):
    twilio.add_message(MARIE, TEXT, status="queued")
    TwilioSmsChannel.from_settings(twilio_settings(twilio)).send(
        OutboundMessage(to=MARIE, text=TEXT, language="fr", attempt=3))
    assert len(twilio.sent(MARIE)) == 1 and lookups(twilio) == []


@pytest.mark.parametrize("status, body", [
    (500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
    (403, {"code": 20003, "message": "Permission Denied", "status": 403}),  # an API key without read access
    (200, {"unexpected": []}),
])
def test_lookup_that_fails_sends_anyway_once(twilio, status, body):
    twilio.list_failures.append((status, body))
    receipt = TwilioSmsChannel.from_settings(twilio_settings(twilio)).send(retry())
    assert len(twilio.sent(MARIE)) == 1 and receipt.external_id == twilio.messages[0]["sid"]


def test_through_a_messaging_service_the_lookup_compares_the_service(twilio):
    settings = {**twilio_settings(twilio), "TWILIO_FROM_NUMBER": None, "TWILIO_MESSAGING_SERVICE_SID": SERVICE}
    channel = TwilioSmsChannel.from_settings(settings)
    twilio.add_message(MARIE, TEXT, from_="+18195550123", service="MG" + "2" * 32)  # another service's
    earlier = twilio.add_message(MARIE, TEXT, from_="+18195550123", service=SERVICE, status="queued")

    assert channel.send(retry()).external_id == earlier["sid"]
    assert twilio.sent() == [] and lookups(twilio)[0].form == {"To": [MARIE], "PageSize": ["20"]}


def test_lookup_leaves_no_phone_number_or_text_in_the_logs(twilio, caplog):
    twilio.list_failures.append((500, {"code": 20500, "message": "Internal Server Error", "status": 500}))
    with caplog.at_level("DEBUG"):
        channel = TwilioSmsChannel.from_settings(twilio_settings(twilio))
        channel.send(retry())
        channel.send(retry())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "lookup failed" in logged and "not sent again" in logged
    assert "5550142" not in logged and "R-2026-4821735" not in logged
