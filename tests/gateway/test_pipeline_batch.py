"""Inbound messages processed in batches: one transaction and one durable commit per batch,
straight through, or, when one of its messages raises, again with each message in its own
SAVEPOINT. A bad message is rolled back alone and recorded; a worker killed in the middle of
a batch leaves every message of it waiting, and each is then processed exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select

from gateway import batch, claims, jobs, pipeline
from gateway.intake import store_inbound
from gateway.models import Citizen, Delivery, Event, InboundMessage, Request
from gateway.settings import ROOT
from tests.support.plans import statements_of


def _store(runtime, count: int, prefix: str = "m", texts: dict[int, str] | None = None,
           senders: int | None = None) -> list[int]:
    ids = []
    for i in range(count):
        # A street the address register does not know: the messages stay separate problems
        # (the register would put them 10 m apart, and dedup would link them).
        text = (texts or {}).get(i, f"Nid de poule profond devant le {10 + 2 * i} chemin des Outardes")
        sender = i % senders if senders else i
        document = {"channel": "web", "description": text, "citizen": {"email": f"{prefix}{sender}@example.org"}}
        inbound_id, _ = store_inbound(runtime, "web_form", f"{prefix}:{i}", json.dumps(document).encode(),
                                      "application/json")
        ids.append(inbound_id)
    return ids


def _states(runtime, ids) -> dict[int, tuple]:
    with runtime.db.session() as session:
        rows = session.execute(select(InboundMessage.id, InboundMessage.state, InboundMessage.attempts,
                                      InboundMessage.request_id).where(InboundMessage.id.in_(ids)))
        return {row.id: (row.state, row.attempts, row.request_id) for row in rows}


def _counts(runtime) -> tuple[int, int, int]:
    with runtime.db.session() as session:
        requests = session.scalar(select(func.count()).select_from(Request))
        deliveries = session.scalar(select(func.count()).select_from(Delivery))
        keys = session.scalar(select(func.count(func.distinct(Delivery.idempotency_key))))
    return requests, deliveries, keys


def break_the_router(monkeypatch):
    """The router raises on any text with BOOM in it. Returns the real ``decide``."""
    real_decide = pipeline.decide

    def decide(book, facts):
        if "BOOM" in facts.text:
            raise RuntimeError("the router fell over")
        return real_decide(book, facts)

    monkeypatch.setattr(pipeline, "decide", decide)
    return real_decide


@pytest.mark.errors_expected  # a message that raises on purpose
def test_a_bad_message_is_rolled_back_alone_and_the_rest_of_the_batch_goes_through(make_app, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 6, texts={3: "Lampadaire BOOM éteint depuis hier soir"})
    broken, _ = store_inbound(runtime, "web_form", "broken", b"{not json", "application/json")
    real_decide = break_the_router(monkeypatch)

    deliveries, _ = batch.process_batch(runtime, sorted(ids + [broken]), 10)

    states = _states(runtime, ids + [broken])
    good = [i for n, i in enumerate(ids) if n != 3]
    assert all(states[i][0] == "processed" and states[i][2] for i in good)
    assert states[ids[3]][:2] == ("received", 1)  # counted once, retried later
    assert states[broken][:2] == ("failed", 0)  # unparseable: reported, not retried
    requests, count, keys = _counts(runtime)
    assert requests == 5 and count == keys == len(deliveries) == 10  # department + acknowledgement each
    with runtime.db.session() as session:
        error = session.scalar(select(InboundMessage.error).where(InboundMessage.id == ids[3]))
        assert error == "RuntimeError: the router fell over"
        assert session.scalar(select(func.count()).select_from(Event).where(Event.type == "received")) == 5

    monkeypatch.setattr(pipeline, "decide", real_decide)
    more, _ = batch.process_batch(runtime, [ids[3]], 10)  # the retry: processed once
    assert _states(runtime, [ids[3]])[ids[3]][:2] == ("processed", 2)
    assert len(more) == 2 and _counts(runtime) == (6, 12, 12)


class Killed(BaseException):
    """Stands for the worker dying: not an Exception, so nothing in the pipeline catches it."""


@pytest.mark.errors_expected  # a message that raises on purpose
def test_a_batch_without_a_bad_message_goes_straight_through_and_one_with_is_done_again(make_app, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    clean = _store(runtime, 4, prefix="clean")
    with statements_of(runtime.db.engine) as ran:
        batch.process_batch(runtime, clean, 10)
    assert not [sql for sql, _ in ran if sql.startswith("SAVEPOINT")]  # one transaction, no SAVEPOINT per message
    assert all(state[:2] == ("processed", 1) for state in _states(runtime, clean).values())

    break_the_router(monkeypatch)
    mixed = _store(runtime, 4, prefix="mixed", texts={3: "Lampadaire BOOM éteint"})  # the last one fails
    with statements_of(runtime.db.engine) as ran:
        deliveries, _ = batch.process_batch(runtime, mixed, 10)
    assert len([sql for sql, _ in ran if sql.startswith("SAVEPOINT")]) == 4  # done again, a SAVEPOINT each
    states = _states(runtime, mixed)
    assert [states[i][:2] for i in mixed] == [("processed", 1)] * 3 + [("received", 1)]
    assert _counts(runtime) == (7, 14, 14) and len(deliveries) == 6  # the first try left nothing behind


def test_a_crash_in_the_middle_of_a_batch_leaves_every_message_waiting(make_app, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 5)
    real_same_citizen, calls = pipeline.same_citizen, []

    def same_citizen(*args, **kwargs):  # a step inside the write transaction (parsing and routing come before it)
        calls.append(1)
        if len(calls) == 3:
            raise Killed()
        return real_same_citizen(*args, **kwargs)

    monkeypatch.setattr(pipeline, "same_citizen", same_citizen)
    try:
        batch.process_batch(runtime, ids, 5)
    except Killed:
        pass
    else:
        raise AssertionError("the batch should have died")
    # The first two were processed inside the batch's transaction, which was never committed.
    assert all(state == ("received", 0, None) for state in _states(runtime, ids).values())
    assert _counts(runtime) == (0, 0, 0)

    monkeypatch.setattr(pipeline, "same_citizen", real_same_citizen)
    deliveries, _ = batch.process_batch(runtime, ids, 5)
    assert all(state[0] == "processed" and state[1] == 1 for state in _states(runtime, ids).values())
    assert _counts(runtime) == (5, 10, 10) and len(deliveries) == 10


KILLER = """
import os, signal, sys
from gateway import batch, create_app, pipeline
runtime = create_app({"DATABASE_URL": sys.argv[1], "GATEWAY_INLINE_JOBS": False, "GATEWAY_SECRET_KEY": "t",
                      "GATEWAY_LOG_LEVEL": "WARNING"}).extensions["runtime"]
real, seen = pipeline.same_citizen, []
def same_citizen(*args, **kwargs):  # inside the write transaction, after three messages were processed in it
    seen.append(1)
    if len(seen) == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
pipeline.same_citizen = same_citizen
batch.process_batch(runtime, [int(sys.argv[2])], 20)
"""


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(make_app, settings):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 8)
    killed = subprocess.run([sys.executable, "-c", KILLER, settings["DATABASE_URL"], str(ids[0])], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120)

    assert killed.returncode == -9, killed.stderr.decode()[-2000:]
    assert all(state == ("received", 0, None) for state in _states(runtime, ids).values())
    assert _counts(runtime) == (0, 0, 0)
    assert claims.pending_inbound(runtime) == ids  # the sweeper finds them all again

    for inbound_id in claims.pending_inbound(runtime):  # what the sweeper's jobs do
        jobs.process_inbound(runtime, inbound_id)
    states = _states(runtime, ids)
    assert all(state[:2] == ("processed", 1) for state in states.values())
    assert len({state[2] for state in states.values()}) == 8  # one request each
    assert _counts(runtime) == (8, 16, 16)


@pytest.mark.sqlite_only  # SQLite's write lock, seen from its file
def test_parsing_and_routing_are_done_before_the_batch_takes_the_write_lock(make_app, settings, monkeypatch):
    """On SQLite a batch holds the single write lock: the pure work (parse, normalize with
    language detection, categorise and route) is done before it, once per message; webhooks
    can store messages meanwhile."""
    import sqlite3

    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 4)
    path = settings["DATABASE_URL"].split("///", 1)[1]
    real_normalize, real_decide, free = pipeline.normalize, pipeline.decide, []

    def can_write() -> bool:
        other = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:  # database is locked
            return False
        finally:
            other.close()

    def normalize(*args):
        free.append(("normalize", can_write()))
        return real_normalize(*args)

    def decide(book, facts):
        free.append(("decide", can_write()))
        return real_decide(book, facts)

    monkeypatch.setattr(pipeline, "normalize", normalize)
    monkeypatch.setattr(pipeline, "decide", decide)
    deliveries, _ = batch.process_batch(runtime, ids, 4)

    assert sorted(free) == [("decide", True)] * 4 + [("normalize", True)] * 4  # once each, none under the lock
    assert all(state[:2] == ("processed", 1) for state in _states(runtime, ids).values())
    assert _counts(runtime) == (4, 8, 8) and len(deliveries) == 8


def test_a_citizen_writing_twice_joins_their_request_whether_new_to_the_batch_or_known_before(make_app):
    """A citizen the batch finds nowhere is created with their first message, and dedup reads
    none of their requests then (there are none); their second message, in the same batch or
    a later one, joins the first's request."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    lamp = "Le lampadaire devant le 40 chemin des Outardes est éteint depuis trois soirs"
    ids = _store(runtime, 3, texts={0: lamp, 2: lamp + " encore"}, senders=2)  # senders 0, 1, 0
    batch.process_batch(runtime, ids, 3)
    document = {"channel": "web", "description": lamp + ", toujours", "citizen": {"email": "m0@example.org"}}
    later, _ = store_inbound(runtime, "web_form", "m:later", json.dumps(document).encode(), "application/json")
    batch.process_batch(runtime, [later], 1)

    states = _states(runtime, ids + [later])
    assert states[ids[2]][2] == states[ids[0]][2] == states[later][2] != states[ids[1]][2]
    assert _counts(runtime)[0] == 2
    with runtime.db.session() as session:
        joined = session.scalars(select(Event.data).where(Event.type == "dedup_joined")).all()
    assert len(joined) == 2 and all(data["action"] == "join" for data in joined)


def test_the_job_for_one_message_takes_the_oldest_waiting_ones_with_it(make_app):
    runtime = make_app(GATEWAY_INLINE_JOBS=False, GATEWAY_PIPELINE_BATCH=4).extensions["runtime"]
    enqueued = []
    runtime.jobs.enqueue = lambda job, item_id: enqueued.append((job, item_id))
    ids = _store(runtime, 7)

    jobs.process_inbound(runtime, ids[5])

    states = _states(runtime, ids)
    assert [i for i in ids if states[i][0] == "processed"] == [ids[0], ids[1], ids[2], ids[5]]
    with runtime.db.session() as session:
        pending = sorted(session.scalars(select(Delivery.id).where(Delivery.state == "pending")))
    assert len(pending) == 8 and enqueued == [("deliver_batch", pending[0])]  # one job per 20, once committed

    jobs.process_inbound(runtime, ids[5])  # its message is done: the job takes the next ones
    assert all(state[0] == "processed" for state in _states(runtime, ids).values())
    assert _counts(runtime) == (7, 14, 14)


def test_concurrent_batches_on_postgresql_skip_each_others_messages(make_app, pg_url):
    runtime = make_app(DATABASE_URL=pg_url, GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _store(runtime, 40)
    ids += _store(runtime, 40, prefix="same", senders=4)  # new citizens, each in both workers' batches
    errors = []

    def worker(start: int) -> None:
        try:
            for inbound_id in ids[start::2]:
                batch.process_batch(runtime, [inbound_id], 8)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors
    states = _states(runtime, ids)
    assert all(state[:2] == ("processed", 1) and state[2] for state in states.values())  # once each
    assert len({states[i][2] for i in ids[:40]}) == 40
    requests, deliveries, keys = _counts(runtime)
    assert deliveries == keys == 2 * requests
    with runtime.db.session() as session:  # a concurrent new citizen is found again, not doubled
        assert session.scalar(select(func.count()).select_from(Citizen)) == 44


def test_a_batch_hands_out_the_photos_of_its_messages_to_fetch(make_app):
    """The photos an MMS carries are fetched once its batch is committed: the batch returns
    them (the sweeper would only find them later); a batch without any returns none."""
    from urllib.parse import urlencode

    from gateway.models import Attachment
    from tests.support.twilio import load

    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    plain = _store(runtime, 3, "sans-photo")
    _, none = batch.process_batch(runtime, plain, 10)
    fixture = load("twilio_sms", "mms__two_photos")
    mms, _ = store_inbound(runtime, "twilio_sms", fixture["params"]["MessageSid"],
                           urlencode(fixture["params"]).encode(), "application/x-www-form-urlencoded")
    more = _store(runtime, 2, "aussi-sans-photo")  # in the same batch as the MMS
    _, photos = batch.process_batch(runtime, [mms] + more, 10)

    with runtime.db.session() as session:
        pending = sorted(session.scalars(select(Attachment.id).where(Attachment.fetch_state == "pending")))
    assert none == [] and len(pending) == 2 and sorted(photos) == pending
    assert all(state == "processed" for state, _, _ in _states(runtime, plain + [mms] + more).values())
