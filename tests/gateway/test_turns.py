"""Webhooks first on SQLite: a pipeline batch gives way to the messages waiting to be stored,
and a message waiting while a batch runs is stored before the next batch begins. Without the
turns, a pipeline worker working through a backlog takes SQLite's write lock again at once
after each commit, and webhooks sleeping in SQLite's busy handler wait for batch after batch."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, func, select

from gateway import batch, pipeline, turns
from gateway.intake import insert_inbound, submit, write
from gateway.models import InboundMessage, Request
from gateway.turns import Turns
from tests.support.backlog import store_web_forms as _store

pytestmark = pytest.mark.sqlite_only  # SQLite's single write lock (PostgreSQL takes no turns)

WAIT = 20  # seconds: a bound for threads, never reached when the test passes


def _batch_begins(runtime) -> list[float]:
    """When each batch's transaction took SQLite's write lock (BEGIN IMMEDIATE)."""
    begins: list[float] = []

    @event.listens_for(runtime.db.engine, "before_cursor_execute")
    def seen(connection, cursor, statement, parameters, context, executemany):
        if statement.startswith("BEGIN IMMEDIATE"):
            begins.append(time.monotonic())

    return begins


def _webhook(runtime, provider_id: str) -> dict:
    """A webhook's write on its own thread; ``at``: when it was committed."""
    done: dict = {}

    def work(connection):
        document = {"channel": "web", "description": "Lampadaire éteint rue Principale",
                    "citizen": {"email": f"{provider_id}@example.org"}}
        return insert_inbound(connection, "web_form", provider_id, json.dumps(document).encode(), "application/json")

    def run():
        done["stored"] = write(runtime, work)
        done["at"] = time.monotonic()

    done["thread"] = threading.Thread(target=run)
    done["thread"].start()
    return done


@contextmanager
def ready_to_write(runtime):
    """A message ready to be stored and waiting for its turn, for as long as the block lasts:
    what a webhook holds from its first INSERT to its commit (the intake lock file, shared)."""
    fd = os.open(runtime.db.turns.paths[0], os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def test_a_batch_waits_for_the_message_waiting_to_be_stored(make_app, monkeypatch):
    monkeypatch.setattr(turns, "YIELD_SECONDS", WAIT)  # a slow machine cannot make it look as if it waited
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    waiting = _store(runtime, 3, "backlog")
    begins = _batch_begins(runtime)
    prepared = threading.Event()
    real_prepare = batch._prepare_batch

    def prepare(*args):
        try:
            return real_prepare(*args)
        finally:
            prepared.set()  # what comes next is the batch's transaction

    monkeypatch.setattr(batch, "_prepare_batch", prepare)
    worker = threading.Thread(target=batch.process_batch, args=(runtime, waiting, len(waiting)))  # the backlog only
    with ready_to_write(runtime):
        worker.start()
        assert prepared.wait(WAIT)
        time.sleep(0.3)
        assert begins == []  # the batch has not taken the write lock: the message goes first
        released = time.monotonic()
    worker.join(WAIT)

    assert len(begins) == 1 and begins[0] > released
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Request)) == 3  # the batch went on after it


def test_a_message_arriving_during_a_batch_is_stored_before_the_next_batch(make_app, monkeypatch):
    monkeypatch.setattr(turns, "YIELD_SECONDS", WAIT)
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    first, second = _store(runtime, 2, "first"), _store(runtime, 2, "second")
    begins = _batch_begins(runtime)
    in_batch, finish = threading.Event(), threading.Event()
    real_process = pipeline.process

    def slow_first_batch(runtime_, session, inbound, ready=None):
        if inbound.id == first[0]:
            in_batch.set()
            assert finish.wait(WAIT)  # the batch holds the write lock until the webhook waits
        return real_process(runtime_, session, inbound, ready)

    monkeypatch.setattr(pipeline, "process", slow_first_batch)

    def worker():  # a pipeline worker working through its backlog: one batch after another
        batch.process_batch(runtime, first, 2)
        batch.process_batch(runtime, second, 2)

    pipeline_worker = threading.Thread(target=worker)
    pipeline_worker.start()
    assert in_batch.wait(WAIT)
    webhook = _webhook(runtime, "SMduring")
    time.sleep(0.3)  # the webhook now waits for the batch's turn
    assert "at" not in webhook
    finish.set()
    webhook["thread"].join(WAIT)
    pipeline_worker.join(WAIT)

    assert len(begins) == 2 and begins[0] < webhook["at"] < begins[1]
    with runtime.db.session() as session:
        states = session.execute(select(InboundMessage.provider_id, InboundMessage.state)).all()
    assert sorted(states) == sorted([(f"first:{i}", "processed") for i in range(2)]
                                    + [(f"second:{i}", "processed") for i in range(2)] + [("SMduring", "received")])


def test_a_citizens_submission_is_made_into_a_request_before_the_next_batch(make_app, monkeypatch):
    """The API, the web form and the counter answer once the request is made. Between storing
    the submission and making its request (its reads first: rules, duplicates), no batch
    begins: without the turns, the citizen waited for batch after batch (up to 2.6 s while a
    worker went through a backlog, docs/benchmarks.md section 1, round 8)."""
    monkeypatch.setattr(turns, "YIELD_SECONDS", WAIT)
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    first, second = _store(runtime, 2, "first"), _store(runtime, 2, "second")
    begins = _batch_begins(runtime)
    in_batch, finish = threading.Event(), threading.Event()
    real_process, real_process_inbound = pipeline.process, pipeline.process_inbound

    def slow_first_batch(runtime_, session, inbound, ready=None):
        if inbound.id == first[0]:
            in_batch.set()
            assert finish.wait(WAIT)
        return real_process(runtime_, session, inbound, ready)

    def reads_first(runtime_, inbound_id):  # a busy machine's reads before the first write
        time.sleep(0.3)
        try:
            return real_process_inbound(runtime_, inbound_id)
        finally:
            answered["made_at"] = time.monotonic()  # committed

    answered: dict = {}
    monkeypatch.setattr(pipeline, "process", slow_first_batch)
    monkeypatch.setattr(pipeline, "process_inbound", reads_first)

    def worker():
        batch.process_batch(runtime, first, 2)
        batch.process_batch(runtime, second, 2)

    def citizen():
        answered["submitted"] = submit(runtime, {
            "channel": "web", "citizen": {"email": "pendant@example.org"},
            "description": "Lampadaire éteint devant le 12 rue Principale"})

    pipeline_worker, form = threading.Thread(target=worker), threading.Thread(target=citizen)
    pipeline_worker.start()
    assert in_batch.wait(WAIT)
    form.start()
    time.sleep(0.3)
    assert "submitted" not in answered  # stored after the batch under way
    finish.set()
    form.join(WAIT)
    pipeline_worker.join(WAIT)

    assert len(begins) == 2 and begins[0] < answered["made_at"] < begins[1]  # made before the next batch
    with runtime.db.session() as session:
        made = session.get(Request, answered["submitted"].request_id)
        assert made.code == answered["submitted"].code and "Principale" in made.description
        assert session.scalar(select(func.count()).select_from(Request)) == 5  # the batches went on after


def test_messages_arriving_without_a_pause_do_not_stop_the_pipeline(make_app, monkeypatch):
    monkeypatch.setattr(turns, "YIELD_SECONDS", 0.2)
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    waiting = _store(runtime, 2, "backlog")
    with ready_to_write(runtime):  # always a message waiting, for as long as it takes
        batch.process_batch(runtime, waiting, len(waiting))  # gives way for 0.2 s, then takes its turn anyway
        with runtime.db.session() as session:
            assert session.scalar(select(func.count()).select_from(Request)) == 2


def test_the_writes_of_one_process_waiting_for_a_batch_do_not_all_look_at_its_lock(tmp_path, monkeypatch):
    """A web worker's four threads wait for the turn a pipeline batch holds: one looks at the
    writer's file again and again, the others wait on the process's own lock, and each is
    stored once the batch ends. (All four looking, every 0.5 ms, cost 0.35 ms of CPU per
    stored webhook at saturation.)"""
    path = str(tmp_path / "gateway.db")
    web, worker = Turns(path), Turns(path)
    looked: dict[int, int] = {}  # thread → its looks at a lock held by another (exclusive, not waiting)
    real_flock = fcntl.flock

    def flock(fd, operation):
        if operation & fcntl.LOCK_EX and operation & fcntl.LOCK_NB:
            looked[threading.get_ident()] = looked.get(threading.get_ident(), 0) + 1
        return real_flock(fd, operation)

    stored: list[int] = []

    def webhook(i):
        with web.intake() as turn:
            turn.write()
            stored.append(i)

    with worker.batch():
        monkeypatch.setattr(fcntl, "flock", flock)
        threads = [threading.Thread(target=webhook, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.3)
        lookers = [n for ident, n in looked.items() if ident != threading.get_ident()]
        assert not stored  # the batch holds the turn
    for thread in threads:
        thread.join(WAIT)
    assert len(lookers) == 1 and lookers[0] > 10  # one of them, many times
    assert sorted(stored) == [0, 1, 2, 3]


@pytest.mark.parametrize("url, active", [
    ("sqlite:////var/lib/gateway/gateway.db", True),
    ("sqlite://", False),
    ("sqlite:///:memory:", False),
    ("postgresql+psycopg://gateway@127.0.0.1/gateway", False),
])
def test_turns_are_taken_only_on_a_sqlite_file(url, active):
    assert Turns.for_url(url).active is active


def test_batches_are_short_while_messages_arrive_and_long_again_after(make_app, monkeypatch):
    monkeypatch.setattr(turns, "YIELD_SECONDS", 0.2)
    monkeypatch.setattr(turns, "HOLD_WHILE_ARRIVING", 1e-9)  # while messages arrive: one message per batch
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    backlog = _store(runtime, 12, "backlog")

    def processed() -> int:
        with runtime.db.session() as session:
            return session.scalar(select(func.count()).select_from(Request))

    with ready_to_write(runtime):
        batch.process_batch(runtime, backlog[:1], 4)  # (a job names one message) gave way: messages arrive
    assert processed() == 4
    batch.process_batch(runtime, backlog[4:5], 4)  # short, as a message may come any moment
    assert processed() == 5
    batch.process_batch(runtime, backlog[5:6], 4)  # still short: a message waited less than a second ago
    assert processed() == 6
    monkeypatch.setattr(turns, "ARRIVING_SECONDS", 0)  # …and once none has waited for that long
    batch.process_batch(runtime, backlog[6:7], 4)  # a whole batch again
    assert processed() == 10


def test_a_process_opens_the_turns_files_once_for_all_its_intake_writes(tmp_path, monkeypatch):
    """Opening and closing both files for each write cost four system calls per webhook."""
    web = Turns(str(tmp_path / "gateway.db"))
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *args: opened.append(path) or real_open(path, *args))

    for _ in range(20):
        with web.intake() as turn:
            turn.write()
    assert sorted(opened) == sorted(web.paths)

    web.close()
    with web.intake() as turn:
        turn.write()
    assert len(opened) == 4  # opened again after the database was disposed of


def test_a_batch_sees_a_write_waiting_until_the_last_write_of_the_process_is_done(tmp_path):
    path = str(tmp_path / "gateway.db")
    web, worker = Turns(path), Turns(path)
    waiting_file = os.open(worker.paths[0], os.O_RDWR | os.O_CREAT)

    def a_write_waits() -> bool:  # what a batch asks: can it take the waiting file for itself?
        if turns._take(waiting_file, fcntl.LOCK_EX, 0):
            fcntl.flock(waiting_file, fcntl.LOCK_UN)
            return False
        return True

    first_writing, second_started, first_may_end = threading.Event(), threading.Event(), threading.Event()
    second_writing, second_may_end = threading.Event(), threading.Event()

    def first():
        with web.intake() as turn:
            turn.write()
            first_writing.set()
            first_may_end.wait(WAIT)

    def second():
        with web.intake() as turn:
            second_started.set()
            turn.write()  # waits for the first to end
            second_writing.set()
            second_may_end.wait(WAIT)

    try:
        assert not a_write_waits()
        one = threading.Thread(target=first, daemon=True)
        one.start()
        first_writing.wait(WAIT)
        two = threading.Thread(target=second, daemon=True)
        two.start()
        second_started.wait(WAIT)
        time.sleep(0.05)
        assert a_write_waits()
        first_may_end.set()
        one.join(WAIT)
        assert second_writing.wait(WAIT) and a_write_waits()  # the first is done, the second still on its way
        second_may_end.set()
        two.join(WAIT)
        assert not a_write_waits()
    finally:
        os.close(waiting_file)


def test_files_closed_while_a_write_is_on_its_way_are_closed_by_that_write(tmp_path):
    web = Turns(str(tmp_path / "gateway.db"))
    with web.intake() as turn:
        turn.write()
        files = turn.files
        web.close()  # the engine disposed of meanwhile (a shutdown)
        os.fstat(files.waiting)  # still open: the write holds its turn
    with pytest.raises(OSError):
        os.fstat(files.waiting)  # closed by the write, its lock with it
    with web.intake() as turn:
        turn.write()
        assert turn.files is not files
