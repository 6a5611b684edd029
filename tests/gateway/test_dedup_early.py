"""Dedup's candidate search made before SQLite's write lock, and caught up inside it
(dedup/early.py): what is written between the two is seen, as if the search had been made
inside the lock. Each test writes between a batch's preparation and its transaction, where
another worker's batch, an agent or the scheduler writes in production."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import func, select, text, update

from dedup import early, stored_keys
from gateway import batch, pipeline
from gateway.db import write_first
from gateway.intake import store_inbound
from gateway.models import Event, InboundMessage, Request, RequestChange

pytestmark = pytest.mark.sqlite_only  # PostgreSQL searches inside its transactions (no write lock to spare)

SPOT = {"lat": 45.4405, "lon": -75.7190, "address": "145, rue Wellington"}
ELSEWHERE = {"lat": 45.4300, "lon": -75.7000, "address": "900, boulevard des Allumettières"}
POTHOLE = "Gros nid-de-poule devant le 145 rue Wellington, les autos font un écart"


def _store(runtime, key: str, description: str = POTHOLE, location: dict = SPOT, email: str | None = None) -> int:
    document = {"channel": "web", "description": description, "location": location,
                "citizen": {"email": email or f"{key}@example.org"}}
    inbound_id, _ = store_inbound(runtime, "web_form", key, json.dumps(document).encode(), "application/json")
    return inbound_id


def _request_of(runtime, inbound_id: int) -> Request:
    with runtime.db.session() as session:
        request_id = session.scalar(select(InboundMessage.request_id).where(InboundMessage.id == inbound_id))
        return session.get(Request, request_id) if request_id else None


def _between(monkeypatch, write):
    """``write(runtime)`` after the batch's searches, before its transaction; and a count of
    the searches made early."""
    made = []
    real_prepare, real_search = batch._prepare_batch, early.search_early

    def prepare(runtime, *args):
        prepared = real_prepare(runtime, *args)
        write(runtime)
        return prepared

    def search(*args):
        made.append(args[1])
        return real_search(*args)

    monkeypatch.setattr(batch, "_prepare_batch", prepare)
    monkeypatch.setattr(early, "search_early", search)
    return made


@pytest.fixture
def runtime(make_app):
    return make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]


def test_a_report_written_after_the_search_is_found_and_the_second_linked_to_it(runtime, monkeypatch):
    first = _store(runtime, "first")
    second = _store(runtime, "second", "Un gros nid-de-poule devant le 145 Wellington, les autos font un écart !")
    made = _between(monkeypatch, lambda rt: pipeline.process_inbound(rt, first))  # another worker, meanwhile

    batch.process_batch(runtime, [second], 1)

    assert len(made) == 1  # searched before the lock, when the first report was not there yet
    master, duplicate = _request_of(runtime, first), _request_of(runtime, second)
    assert duplicate.status == "duplicate" and duplicate.duplicate_of_id == master.id


def test_a_request_found_and_scored_before_the_lock_and_unchanged_since_is_linked_to(runtime, monkeypatch):
    first = _store(runtime, "first")
    pipeline.process_inbound(runtime, first)
    second = _store(runtime, "second", "Un gros nid-de-poule devant le 145 Wellington, les autos font un écart !")
    made = _between(monkeypatch, lambda rt: None)

    batch.process_batch(runtime, [second], 1)

    assert len(made) == 1
    master, duplicate = _request_of(runtime, first), _request_of(runtime, second)
    assert duplicate.status == "duplicate" and duplicate.duplicate_of_id == master.id
    with runtime.db.session() as session:  # the scores recorded are those worked out before the lock
        recorded = session.scalar(select(Event.data).where(Event.request_id == duplicate.id, Event.type == "dedup"))
    assert recorded["cross_citizen"]["master"]["code"] == master.code
    assert recorded["cross_citizen"]["master"]["score"] >= 90 and recorded["cross_citizen"]["compared"] == 1


def test_a_request_closed_after_the_search_is_not_linked_to(runtime, monkeypatch):
    first = _store(runtime, "first")
    pipeline.process_inbound(runtime, first)
    second = _store(runtime, "second")

    def close(rt):
        with rt.db.session() as session:
            session.execute(update(Request).where(Request.id == _request_of(rt, first).id).values(status="closed"))

    made = _between(monkeypatch, close)
    batch.process_batch(runtime, [second], 1)

    assert len(made) == 1
    new = _request_of(runtime, second)
    assert new.status == "routed" and new.duplicate_of_id is None  # the closed one was found before, not kept


def test_a_request_moved_to_the_spot_after_the_search_is_found(runtime, monkeypatch):
    first = _store(runtime, "first", location=ELSEWHERE)
    pipeline.process_inbound(runtime, first)
    second = _store(runtime, "second")
    rules = runtime.rules.current

    def move(rt):  # an agent corrects the first report's place
        cell, street = stored_keys(SPOT["lat"], SPOT["lon"], SPOT["address"], pipeline.current_rules(
            rules.directory, set(rules.categories)))
        with rt.db.session() as session:
            session.execute(update(Request).where(Request.id == _request_of(rt, first).id).values(
                lat=SPOT["lat"], lon=SPOT["lon"], address=SPOT["address"], dedup_cell=cell, dedup_street=street))

    made = _between(monkeypatch, move)
    batch.process_batch(runtime, [second], 1)

    assert len(made) == 1
    assert _request_of(runtime, second).duplicate_of_id == _request_of(runtime, first).id


@pytest.mark.errors_expected  # a message that fails on purpose
def test_a_request_rolled_back_in_its_savepoint_is_not_a_candidate_of_the_next_message(runtime, monkeypatch):
    """The second message fails after its request was written: its SAVEPOINT is rolled back,
    with the request and its log entries, whose ids are given again to the third message's.
    The third, about the same place, is a new request, not a duplicate of a request that is
    not there."""
    ids = [_store(runtime, "one"), _store(runtime, "two", "Lampadaire BOOM éteint devant le 900", ELSEWHERE),
           _store(runtime, "three", "Lampadaire éteint devant le 900 boulevard des Allumettières", ELSEWHERE)]
    real_notify = pipeline.notify

    def notify(session, rt, request, *args, **kwargs):
        if "BOOM" in (request.description or ""):
            raise RuntimeError("the acknowledgement could not be written")
        return real_notify(session, rt, request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "notify", notify)
    made = _between(monkeypatch, lambda rt: None)
    batch.process_batch(runtime, ids, 10)

    assert len(made) == 6  # straight through, then again with a SAVEPOINT per message
    one, two, three = (_request_of(runtime, i) for i in ids)
    assert one.status == "routed" and two is None
    assert three.status == "routed" and three.duplicate_of_id is None
    with runtime.db.session() as session:
        assert session.scalar(select(InboundMessage.state).where(InboundMessage.id == ids[1])) == "received"


def test_without_the_triggers_the_search_is_made_inside_the_lock_and_still_finds_it(make_app, monkeypatch, caplog):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    with runtime.db.session() as session:  # as a migration rebuilding the requests table would leave it
        session.execute(text("DROP TRIGGER requests_logged_update"))
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]  # a new engine: asked again
    first, second = _store(runtime, "first"), _store(runtime, "second")
    made = _between(monkeypatch, lambda rt: pipeline.process_inbound(rt, first))

    with caplog.at_level(logging.WARNING, logger="dedup.early"):
        batch.process_batch(runtime, [second], 1)

    assert made == [] and "requests_logged_update" in caplog.text
    assert _request_of(runtime, second).duplicate_of_id == _request_of(runtime, first).id


def test_the_log_is_pruned_and_a_search_older_than_what_is_kept_is_made_again(runtime, monkeypatch):
    monkeypatch.setattr(early, "KEEP", 6)
    monkeypatch.setattr(early, "PRUNE_EVERY", 1)
    for i in range(12):  # potholes far apart: twelve requests, logged
        pipeline.process_inbound(runtime, _store(runtime, f"far{i}", f"Nid-de-poule devant le {100 + i} Jacques",
                                                 {"lat": 45.40 + i / 100, "lon": -75.70, "address": f"{100 + i} rue Jacques"}))
    with runtime.db.session() as session:
        stale = early.Since(1)  # a search made before the first entries, then pruned past
        logged_before = session.scalar(select(func.count()).select_from(RequestChange))
    first, second = _store(runtime, "first"), _store(runtime, "second")
    _between(monkeypatch, lambda rt: pipeline.process_inbound(rt, first))
    batch.process_batch(runtime, [second], 1)

    with runtime.db.session() as session:
        kept = session.scalar(select(func.count()).select_from(RequestChange))
        assert stale.read(session.connection()) is False  # it would miss entries: searched again instead
    assert logged_before >= 12 and early.KEEP <= kept <= early.KEEP + 3  # + what the batch's last message wrote
    assert _request_of(runtime, second).duplicate_of_id == _request_of(runtime, first).id


def test_after_a_rolled_back_savepoint_the_catching_up_reads_the_request_now_under_that_id(runtime):
    """What a SAVEPOINT wrote, and its log entries, go with it, and their ids are given again.
    Having read them, the batch's catching up forgets them (``Since.forget``, as a batch does
    on every rollback) and reads the new request under that id, not the vanished one."""
    rules = runtime.rules.current

    def request(code: str, description: str) -> dict:
        cell, street = stored_keys(SPOT["lat"], SPOT["lon"], SPOT["address"],
                                   pipeline.current_rules(rules.directory, set(rules.categories)))
        return dict(code=code, status="routed", channel="api", category="pothole", description=description,
                    lat=SPOT["lat"], lon=SPOT["lon"], address=SPOT["address"], dedup_cell=cell, dedup_street=street)

    with runtime.db.session() as session:
        write_first(session)  # BEGIN IMMEDIATE, as a batch: its SAVEPOINTs nest in it
        connection = session.connection()
        since = early.before_lock(connection)
        savepoint = session.begin_nested()
        connection = session.connection()  # the SAVEPOINT is begun as the session hands it out
        connection.execute(Request.__table__.insert(), request("R-GONE", "rolled back with its SAVEPOINT"))
        since.read(connection)
        savepoint.rollback()
        since.forget()
        connection.execute(Request.__table__.insert(), request("R-HERE", "written after"))
        since.read(connection)
        assert [row.code for row in since.rows.values()] == ["R-HERE"]
