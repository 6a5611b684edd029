"""Deliveries claimed in batches: one claim commit for many, each outcome recorded on its own,
a bad delivery that does not hold up the others, a batch that runs out of time, a worker that
dies mid-batch, and the queued jobs a batch makes useless withdrawn from Redis."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import create_engine, event, select, text

from adapters.base import OutboundMessage
from gateway import jobs, outbox
from gateway.models import Delivery, Event, Message, Request, utcnow
from tests.support.servers import wait_until

SUBMISSION = {"description": "Les ordures n'ont pas été ramassées rue Champlain",
              "citizen": {"email": "lucie@example.org"}}


def quiet_app(make_app, auth, smtp_server, **overrides):
    """An app whose jobs run only when the test says so (no sweeper), with one request whose
    own deliveries are already sent: the test adds the deliveries it needs."""
    app = make_app(GATEWAY_INLINE_JOBS=False, **overrides)
    runtime = app.extensions["runtime"]
    app.test_client().post("/api/v1/requests", json=SUBMISSION, headers=auth)

    def sent() -> bool:  # with a short lease a slow machine hands part of a batch back: there is
        outbox.run_batch(runtime)  # no sweeper here to send it, so the test does
        return len(states(runtime)) == 2 and set(states(runtime).values()) == {"delivered"}

    wait_until(sent)
    smtp_server.messages.clear()
    return runtime


@pytest.fixture
def quiet(make_app, auth, smtp_server):
    return quiet_app(make_app, auth, smtp_server)


def states(runtime) -> dict[int, str]:
    with runtime.db.session() as session:
        return dict(session.execute(select(Delivery.id, Delivery.state)).all())


def row(runtime, delivery_id: int) -> Delivery:
    with runtime.db.session() as session:
        return session.get(Delivery, delivery_id)


def add_notice(runtime, key: str, **message) -> int:
    """A citizen notice in the outbox, about the quiet fixture's request."""
    with runtime.db.session() as session:
        request = session.scalars(select(Request)).one()
        message = {"language": "fr", "subject": "Suivi de votre demande", "text": "Votre demande avance.", **message}
        return outbox.add_delivery(session, request, "notify", "email", {"message": message, "kind": "update"}, key).id


def commits(runtime) -> list:
    """The commits made from here on in this thread: the batch runs in it, while the app's
    background threads (the SLA watch) commit on the same engine now and then."""
    counted, mine = [], threading.get_ident()
    event.listen(runtime.db.engine, "commit",
                 lambda _connection: counted.append(1) if threading.get_ident() == mine else None)
    return counted


@pytest.mark.sqlite_only  # counts SQLite's commits; PostgreSQL's outcomes are written in autocommit (the [postgresql] case below)
@pytest.mark.errors_expected  # a delivery that raises TypeError
def test_one_claim_commit_for_the_batch_and_a_bad_delivery_does_not_hold_up_the_others(quiet, smtp_server):
    runtime = quiet
    first = add_notice(runtime, "batch:1", to="anne@example.org")
    invalid = add_notice(runtime, "batch:2", to="pas-une-adresse")  # permanent: dead at once
    broken = add_notice(runtime, "batch:3", to="bruno@example.org")
    with runtime.db.session() as session:  # a row the channel cannot even read: a bug, not the citizen's
        session.get(Delivery, broken).settings = {"message": {"text": "no recipient"}, "kind": "update"}
    last = add_notice(runtime, "batch:4", to="chloe@example.org")
    counted = commits(runtime)
    started = utcnow()

    outcomes = outbox.run_batch(runtime, first=first)

    assert outcomes == {first: "delivered", invalid: "dead", broken: "pending", last: "delivered"}
    assert len(counted) == 1 + 4  # the claim of all four, then each outcome as soon as it is known
    assert len(smtp_server.to("anne@example.org")) == 1 and len(smtp_server.to("chloe@example.org")) == 1
    assert len(smtp_server.messages) == 2
    assert "not an e-mail address" in row(runtime, invalid).last_error and row(runtime, invalid).attempts == 1
    retried = row(runtime, broken)
    assert retried.last_error == "unexpected TypeError" and retried.next_attempt_at > started  # later, with backoff
    assert retried.lease_until is None
    with runtime.db.session() as session:
        kinds = {e.data["delivery"]: e.type for e in session.scalars(select(Event).where(Event.type.like("deliver%")))}
        sent = set(session.scalars(select(Message.delivery_id).where(Message.delivery_id.is_not(None))))
    assert {kinds[i] for i in (first, last)} == {"delivered"}
    assert kinds[invalid] == "delivery_dead" and kinds[broken] == "delivery_retry"
    assert {first, last} <= sent and invalid not in sent and broken not in sent


def test_a_delivery_held_by_another_worker_is_left_out_of_the_batch(quiet, smtp_server):
    runtime = quiet
    held, free = add_notice(runtime, "held:1", to="anne@example.org"), add_notice(runtime, "held:2", to="bruno@example.org")
    with runtime.db.session() as session:  # another worker claimed it: its lease runs
        delivery = session.get(Delivery, held)
        delivery.state, delivery.lease_until = "sending", utcnow() + timedelta(minutes=5)

    assert outbox.run_batch(runtime, first=held) == {free: "delivered"}
    assert smtp_server.to("anne@example.org") == [] and row(runtime, held).state == "sending"


def test_two_batches_claimed_at_once_share_no_delivery(quiet):
    runtime = quiet
    ids = {add_notice(runtime, f"share:{i}", to=f"usager{i}@example.org") for i in range(5)}
    now = utcnow()
    with runtime.db.engine.begin() as connection:
        one = {r.id for r in outbox.claim_batch(connection, now, now + timedelta(seconds=30), 3)}
    with runtime.db.engine.begin() as connection:
        two = {r.id for r in outbox.claim_batch(connection, now, now + timedelta(seconds=30), 3)}
    assert len(one) == 3 and len(two) == 2 and one | two == ids


def test_concurrent_batch_claims_on_postgresql_skip_each_others_rows(make_app, auth, smtp_server, pg_url):
    runtime = quiet_app(make_app, auth, smtp_server, DATABASE_URL=pg_url)
    ids = {add_notice(runtime, f"pg:{i}", to=f"usager{i}@example.org") for i in range(6)}
    now = utcnow()
    lease = now + timedelta(seconds=30)
    with runtime.db.engine.connect() as one, runtime.db.engine.connect() as two:
        first = one.begin()
        taken_first = {r.id for r in outbox.claim_batch(one, now, lease, 4)}  # locked, not committed yet
        second = two.begin()
        two.exec_driver_sql("SET LOCAL lock_timeout = '3s'")  # waiting for the first would fail, not hang
        taken_second = {r.id for r in outbox.claim_batch(two, now, lease, 4)}
        second.commit()
        first.commit()
    assert len(taken_first) == 4 and taken_second == ids - taken_first


def test_a_worker_dead_mid_batch_leaves_the_rest_to_its_lease_and_resends_under_the_same_key(quiet, smtp_server):
    runtime = quiet
    ids = [add_notice(runtime, f"crash:{i}", to=f"usager{i}@example.org") for i in range(4)]
    now = utcnow()
    with runtime.db.engine.begin() as connection:  # a worker claims the four with a short lease...
        claimed = outbox.claim_batch(connection, now, now + timedelta(seconds=1), 20)
    channel = runtime.outbound("email")
    for delivery in claimed[:2]:  # ...sends two, and dies before recording them
        channel.send(OutboundMessage(idempotency_key=delivery.idempotency_key, **delivery.settings["message"]))

    assert outbox.run_batch(runtime) == {}  # nobody else sends them while the lease runs
    wait_until(lambda: utcnow() > now + timedelta(seconds=1), timeout=5)
    assert outbox.run_batch(runtime) == dict.fromkeys(ids, "delivered")

    message_ids = [str(m["Message-ID"]) for m in smtp_server.messages]
    assert len(message_ids) == 6 and len(set(message_ids)) == 4  # the two resent carry their first Message-ID
    assert all(row(runtime, i).attempts == 2 for i in ids)


def test_a_batch_out_of_time_hands_the_rest_back_uncounted(make_app, auth, smtp_server, monkeypatch):
    runtime = quiet_app(make_app, auth, smtp_server, GATEWAY_LEASE_SECONDS=0.4)  # 0.1 s to start the sends
    ids = [add_notice(runtime, f"slow:{i}", to=f"usager{i}@example.org") for i in range(3)]
    channel = runtime.outbound("email")
    send = channel.send

    def slow_send(message):  # a slow server: each message takes longer than the batch's margin
        time.sleep(0.15)
        return send(message)

    monkeypatch.setattr(channel, "send", slow_send)
    enqueued = []
    monkeypatch.setattr(runtime.jobs, "enqueue", lambda job, item_id: enqueued.append((job, item_id)))

    assert outbox.run_batch(runtime, first=ids[0]) == {ids[0]: "delivered"}
    handed_back = [row(runtime, i) for i in ids[1:]]
    assert all(d.state == "pending" and d.attempts == 0 and d.lease_until is None for d in handed_back)
    assert enqueued == [("deliver_batch", ids[1])]  # a job for them now, not the sweeper later
    assert outbox.run_batch(runtime) == {ids[1]: "delivered"}
    assert outbox.run_batch(runtime) == {ids[2]: "delivered"}
    assert all(len(smtp_server.to(f"usager{i}@example.org")) == 1 for i in range(3))


def test_the_jobs_a_batch_made_useless_are_withdrawn_from_the_queue(make_app, redis_server, smtp_server):
    from rq.job import Job

    app = make_app(GATEWAY_INLINE_JOBS=False, REDIS_URL=redis_server.url)
    runtime = app.extensions["runtime"]
    with runtime.db.session() as session:
        request = Request(code="R-2026-0000001", channel="web", description="Lampadaire éteint")
        session.add(request)
        session.flush()
        ids = [outbox.add_delivery(session, request, "notify", "email", {"message": {
            "to": f"usager{i}@example.org", "text": "Reçu.", "language": "fr"}}, f"queue:{i}").id for i in range(3)]
    for delivery_id in [*ids, 999_999]:
        runtime.jobs.enqueue("deliver", delivery_id)
    runtime.jobs.enqueue("deliver_batch", ids[2])  # stands for a batch of new deliveries: kept
    runtime.jobs.enqueue("sweep", 0)

    jobs.deliver(runtime, ids[0])  # what the worker runs for the first job

    queue = runtime.jobs.queue
    left = [Job.fetch(i, connection=queue.connection).args for i in queue.get_job_ids()]
    assert left == [("deliver", ids[0]), ("deliver", 999_999), ("deliver_batch", ids[2]), ("sweep", 0)]
    assert len(smtp_server.messages) == 3
    assert len(runtime.jobs.redis.keys("rq:job:*")) == 4  # the withdrawn jobs are gone, not orphaned

    started = utcnow()  # an administrator retries a delivery while a batch that sent it finishes
    runtime.jobs.enqueue("deliver", ids[1])
    jobs._withdraw_deliveries(runtime, {ids[1]}, started, scan=40)
    assert ("deliver", ids[1]) in [Job.fetch(i, connection=queue.connection).args for i in queue.get_job_ids()]


def test_one_job_per_batch_of_new_deliveries_sends_them_all_in_any_order(make_app, auth, smtp_server, monkeypatch):
    runtime = quiet_app(make_app, auth, smtp_server, GATEWAY_DELIVERY_BATCH=3)
    ids = [add_notice(runtime, f"many:{i}", to=f"usager{i}@example.org") for i in range(7)]
    enqueued = [("deliver", ids[5])]  # an administrator's job for one of them, run first
    monkeypatch.setattr(runtime.jobs, "enqueue", lambda job, item_id: enqueued.append((job, item_id)))

    jobs.enqueue_deliveries(runtime, ids)  # what process_inbound and the sweeper do

    assert enqueued[1:] == [("deliver_batch", ids[0]), ("deliver_batch", ids[3]), ("deliver_batch", ids[6])]
    for job, item_id in [enqueued[0], *reversed(enqueued[1:])]:  # a batch's job may take others' deliveries
        jobs.JOBS[job](runtime, item_id)
    assert set(states(runtime).values()) == {"delivered"}
    assert all(len(smtp_server.to(f"usager{i}@example.org")) == 1 for i in range(7))


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_each_outcome_writes_its_records_once_and_only_if_the_lease_is_still_ours(
        database, request, make_app, auth, smtp_server, monkeypatch):
    overrides = {"DATABASE_URL": request.getfixturevalue("pg_url")} if database == "postgresql" else {}
    runtime = quiet_app(make_app, auth, smtp_server, **overrides)
    update = add_notice(runtime, "rec:update", to="bruno@example.org")
    dead = add_notice(runtime, "rec:dead", to="pas-une-adresse")
    taken = add_notice(runtime, "rec:taken", to="chloe@example.org")  # its lease runs out while it is sent
    with runtime.db.session() as session:
        fresh = Request(code="R-2026-0000002", channel="email", description="Nid-de-poule rue Principale")
        session.add(fresh)
        session.flush()
        acknowledgement = outbox.add_delivery(session, fresh, "notify", "email", {"message": {
            "to": "anne@example.org", "text": "Reçu.", "language": "fr", "subject": "R-2026-0000002"},
            "kind": "acknowledgement"}, "rec:ack").id
        fresh_id = fresh.id
    with runtime.db.session() as session:  # a chat reply about no request: its row is the only record
        chat = outbox.add_delivery(session, None, "notify", "email", {"message": {
            "to": "denis@example.org", "text": "Bonjour.", "language": "fr"}}, "rec:chat").id
    channel = runtime.outbound("email")
    send = channel.send
    other_lease = utcnow() + timedelta(minutes=5)

    def send_and_lose_the_lease(message):
        if message.idempotency_key == "rec:taken":  # another worker took it over meanwhile
            with runtime.db.session() as session:
                session.get(Delivery, taken).lease_until = other_lease
        return send(message)

    monkeypatch.setattr(channel, "send", send_and_lose_the_lease)
    statements = []
    event.listen(runtime.db.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    counted = commits(runtime)

    outcomes = outbox.run_batch(runtime, first=acknowledgement)
    batch_commits = len(counted) - 1  # the other worker's takeover committed once

    assert outcomes == {acknowledgement: "delivered", update: "delivered", dead: "dead", taken: "delivered",
                        chat: "delivered"}
    assert len(smtp_server.messages) == 4
    with runtime.db.session() as session:
        events = session.scalars(select(Event).where(Event.type.in_(("delivered", "delivery_dead")))).all()
        events = {e.data["delivery"]: (e.type, e.actor, e.data["attempt"], e.request_id) for e in events}
        messages = {m.delivery_id: (m.direction, m.channel, m.body, m.subject, m.external_id, m.request_id)
                    for m in session.scalars(select(Message).where(Message.delivery_id.is_not(None)))}
        acknowledged = session.get(Request, fresh_id)
        lost = session.get(Delivery, taken)
        sent = session.get(Delivery, acknowledgement)
    assert events[acknowledgement] == ("delivered", "channel:email", 1, fresh_id)
    assert events[dead][0] == "delivery_dead" and "not an e-mail address" in row(runtime, dead).last_error
    assert update in events and taken not in events and chat not in events
    assert messages[acknowledgement] == ("out", "email", "Reçu.", "R-2026-0000002", "<rec.ack@bellerive.example.org>",
                                         fresh_id)
    assert update in messages and dead not in messages and taken not in messages and chat not in messages
    assert acknowledged.acknowledged_at == sent.delivered_at and sent.lease_until is None
    assert sent.external_id == "<rec.ack@bellerive.example.org>" and row(runtime, chat).state == "delivered"
    assert lost.state == "sending" and lost.lease_until == other_lease  # the other worker's claim stands
    if database == "postgresql":  # one statement and its own commit per outcome, after the claim's commit
        assert batch_commits == 1
        assert len([s for s in statements if "o_row" in s]) == 5  # gateway/outcomes.py _outcome_statement
        assert not any(s.startswith(("INSERT", "UPDATE requests")) for s in statements)
        pooled = [runtime.db.engine.connect() for _ in range(runtime.db.engine.pool.checkedin())]
        try:  # the batch's connection went back to the pool in transactions again, not autocommit
            assert pooled and not any(c.connection.dbapi_connection.autocommit for c in pooled)
        finally:
            for connection in pooled:
                connection.close()
    else:
        assert batch_commits == 1 + 5


def test_a_database_connection_dropped_during_a_send_is_replaced_and_the_outcome_recorded(
        make_app, auth, smtp_server, pg_url, monkeypatch):
    runtime = quiet_app(make_app, auth, smtp_server, DATABASE_URL=pg_url)
    ids = [add_notice(runtime, f"drop:{i}", to=f"usager{i}@example.org") for i in range(3)]
    channel = runtime.outbound("email")
    send = channel.send
    admin = create_engine(pg_url)

    def send_while_the_database_drops_connections(message):
        if message.idempotency_key == "drop:1":  # a restart, an administrator's kill: the batch's connection dies
            with admin.begin() as connection:
                connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE pid <> pg_backend_pid() AND datname = current_database()"))
        return send(message)

    monkeypatch.setattr(channel, "send", send_while_the_database_drops_connections)
    try:
        assert outbox.run_batch(runtime) == dict.fromkeys(ids, "delivered")
    finally:
        admin.dispose()
    assert all(len(smtp_server.to(f"usager{i}@example.org")) == 1 for i in range(3))
    with runtime.db.session() as session:
        recorded = set(session.scalars(select(Message.delivery_id).where(Message.delivery_id.in_(ids))))
    assert recorded == set(ids)
