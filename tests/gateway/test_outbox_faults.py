"""The outbox against a real SMTP server that goes down, comes back, or refuses."""

from __future__ import annotations

from sqlalchemy import select

from gateway import outbox
from gateway.models import Delivery
from tests.support.servers import wait_until

SUBMISSION = {"description": "Les ordures n'ont pas été ramassées rue Champlain",
              "citizen": {"email": "lucie@example.org"}}


def deliveries(runtime) -> list[Delivery]:
    with runtime.db.session() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def test_smtp_down_delays_delivery_and_nothing_is_sent_twice_when_it_returns(client, runtime, smtp_server, auth):
    smtp_server.stop()
    created = client.post("/api/v1/requests", json=SUBMISSION, headers=auth).get_json()
    assert created["department"] == "environnement"

    failed = wait_until(lambda: all(d.attempts >= 2 for d in deliveries(runtime)) and deliveries(runtime))
    assert all(d.state in ("pending", "sending") for d in failed)
    assert all("unreachable" in (d.last_error or "") for d in failed if d.state == "pending")

    smtp_server.start()  # same port: the server is back
    wait_until(lambda: all(d.state == "delivered" for d in deliveries(runtime)), timeout=15)

    assert len(smtp_server.to("collectes@bellerive.example.org")) == 1
    assert len(smtp_server.to("lucie@example.org")) == 1
    # a further sweep finds nothing to send again
    assert outbox.due_deliveries(runtime) == []


def test_permanent_refusal_goes_to_dead_letters_and_can_be_retried(client, runtime, smtp_server, auth):
    smtp_server.reject_with = 550
    client.post("/api/v1/requests", json=SUBMISSION, headers=auth)

    dead = wait_until(lambda: [d for d in deliveries(runtime) if d.state == "dead"] if len(
        [d for d in deliveries(runtime) if d.state == "dead"]) == 2 else None)
    assert all("550" in d.last_error for d in dead)
    assert all(d.attempts == 1 for d in dead)  # permanent: not retried by itself

    smtp_server.reject_with = None
    for delivery in dead:
        assert outbox.retry_dead(runtime, delivery.id, "admin:test")
    wait_until(lambda: all(d.state == "delivered" for d in deliveries(runtime)))
    assert len(smtp_server.messages) == 2


def test_too_many_transient_failures_end_in_dead_letters(make_app, smtp_server, auth):
    smtp_server.stop()
    app = make_app(GATEWAY_MAX_ATTEMPTS=2)
    runtime = app.extensions["runtime"]
    app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth)

    dead = wait_until(lambda: len([d for d in deliveries(runtime) if d.state == "dead"]) == 2, timeout=15)
    assert dead
    assert all("gave up after 2 attempts" in d.last_error for d in deliveries(runtime))


def test_claimed_delivery_is_not_sent_by_a_second_worker(make_app, auth, smtp_server):
    from datetime import timedelta

    from gateway.models import utcnow

    app = make_app(GATEWAY_INLINE_JOBS=False)  # no sweeper thread: nothing else touches the rows
    runtime = app.extensions["runtime"]
    smtp_server.stop()
    app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth)
    wait_until(lambda: all(d.attempts == 1 and d.state == "pending" for d in deliveries(runtime)))
    first = deliveries(runtime)[0]
    smtp_server.start()
    with runtime.db.session() as session:  # a first worker holds it: lease in the future
        row = session.get(Delivery, first.id)
        row.state, row.lease_until, row.next_attempt_at = "sending", utcnow() + timedelta(minutes=5), utcnow()

    with runtime.db.session() as session:
        assert outbox.claim(session, first.id, utcnow(), timedelta(seconds=30)) is False
    assert outbox.run_delivery(runtime, first.id) is None
    assert first.id not in outbox.due_deliveries(runtime)
    assert smtp_server.to("collectes@bellerive.example.org") == []


def test_worker_that_died_mid_send_is_replaced_after_its_lease(make_app, auth, smtp_server):
    from datetime import timedelta

    from gateway.models import utcnow

    app = make_app(GATEWAY_INLINE_JOBS=False)  # no sweeper thread: this test drives the sweeps
    runtime = app.extensions["runtime"]
    smtp_server.stop()
    app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth)
    wait_until(lambda: all(d.attempts == 1 and d.state == "pending" for d in deliveries(runtime)))
    first = deliveries(runtime)[0]
    with runtime.db.session() as session:  # a worker claimed it, then died: lease still running
        row = session.get(Delivery, first.id)
        row.state, row.lease_until, row.next_attempt_at = "sending", utcnow() + timedelta(seconds=1), utcnow()
    smtp_server.start()

    assert first.id not in outbox.due_deliveries(runtime)  # not while the lease runs
    wait_until(lambda: first.id in outbox.due_deliveries(runtime), timeout=5)  # lease expired
    assert outbox.run_delivery(runtime, first.id) == "delivered"
    assert outbox.run_delivery(runtime, first.id) is None  # a second hand-out does nothing
    assert len(smtp_server.to("collectes@bellerive.example.org")) == 1


def test_smtp_restart_between_messages_loses_no_delivery(client, runtime, smtp_server, auth):
    """The transport keeps its SMTP session open between messages: a server restarted in the
    meantime must not turn the next delivery into a failure."""
    client.post("/api/v1/requests", json=SUBMISSION, headers=auth)
    wait_until(lambda: all(d.state == "delivered" for d in deliveries(runtime)) and deliveries(runtime))
    smtp_server.stop()
    smtp_server.start()  # same port: the sessions kept open by the workers are gone

    client.post("/api/v1/requests", json={**SUBMISSION, "citizen": {"email": "marc@example.org"}}, headers=auth)
    wait_until(lambda: len(deliveries(runtime)) == 4 and all(d.state == "delivered" for d in deliveries(runtime)),
               timeout=5)

    assert all(d.attempts == 1 for d in deliveries(runtime))  # reconnected, not retried later
    assert len(smtp_server.to("marc@example.org")) == 1
