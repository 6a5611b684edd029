"""The scheduler's passes over many requests (SLA marks, closing) on a busy day: in short
transactions, so the messages arriving are stored meanwhile; one request that cannot be done
does not hold back the others; and the requests past due are found first, however many
others are open."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select, update

from gateway import batch, closure, scheduler
from gateway.models import OPEN_STATUSES, Request, utcnow

from .test_turns import WAIT, _store, _webhook

LATER = timedelta(days=60)  # every request of the sample city is past due by then


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> dict:
    """The settings for one database: SQLite (the default) or PostgreSQL (production's), where
    the passes lock each request they write (FOR UPDATE) instead of taking SQLite's lock."""
    return {} if request.param == "sqlite" else {"DATABASE_URL": request.getfixturevalue("pg_url")}


def _requests(runtime, count: int, prefix: str) -> list[int]:
    """``count`` new requests (potholes of the sample city, each with its SLA), by the pipeline."""
    inbound = _store(runtime, count, prefix)
    batch.process_batch(runtime, inbound, len(inbound))
    with runtime.db.session() as session:
        ids = list(session.scalars(select(Request.id).where(Request.status.in_(OPEN_STATUSES))
                                   .order_by(Request.id)))
    assert len(ids) >= count
    return ids


def _states(runtime, ids) -> dict[int, str | None]:
    with runtime.db.session() as session:
        return dict(session.execute(select(Request.id, Request.sla_state).where(Request.id.in_(ids))).all())


def test_a_message_arriving_during_a_storms_sla_pass_is_stored_before_the_pass_ends(make_app, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    ids = _requests(runtime, 60, "storm")
    in_pass, calls = threading.Event(), []
    real_notify = scheduler.notify_department

    def slow_notify(session, runtime_, request, kind, extra=None):
        calls.append(request.id)
        notices = real_notify(session, runtime_, request, kind, extra)
        session.flush()  # written: the pass holds the write lock
        if len(calls) == 1:
            in_pass.set()
            time.sleep(0.5)  # the message arrives meanwhile
        time.sleep(0.01)
        return notices

    monkeypatch.setattr(scheduler, "notify_department", slow_notify)
    ended: dict = {}

    def sla_pass():
        ended["deliveries"] = scheduler.check_sla(runtime, utcnow() + LATER)
        ended["at"] = time.monotonic()

    worker = threading.Thread(target=sla_pass)
    worker.start()
    assert in_pass.wait(WAIT)
    message = _webhook(runtime, "during-the-sla-pass")
    message["thread"].join(WAIT)
    worker.join(WAIT)

    assert message["stored"].created and message["at"] < ended["at"]  # it did not wait for the whole pass
    assert set(_states(runtime, ids).values()) == {"breached"}  # and the pass marked them all
    assert len(calls) == len(ids) and len(set(ended["deliveries"])) == len(ids)  # the department told once each


@pytest.mark.errors_expected
def test_a_request_that_cannot_be_marked_does_not_hold_back_the_others(make_app, database, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False, **database).extensions["runtime"]
    ids = _requests(runtime, 5, "due")
    broken = ids[2]
    real_notify = scheduler.notify_department

    def notify(session, runtime_, request, kind, extra=None):
        if request.id == broken:
            raise RuntimeError("the department's notice cannot be written")
        return real_notify(session, runtime_, request, kind, extra)

    monkeypatch.setattr(scheduler, "notify_department", notify)
    first = scheduler.check_sla(runtime, utcnow() + LATER)

    assert _states(runtime, ids) == {i: (None if i == broken else "breached") for i in ids}
    assert len(set(first)) == 4

    monkeypatch.setattr(scheduler, "notify_department", real_notify)  # mended: the next pass marks it
    second = scheduler.check_sla(runtime, utcnow() + LATER)
    assert set(_states(runtime, ids).values()) == {"breached"}
    assert len(second) == 1 and not set(second) & set(first)


def test_requests_past_due_are_found_behind_a_thousand_open_ones(make_app, database):
    """A city has thousands of open requests within their SLA; the pass reads at most 1,000 a
    time, the earliest due first, so the ones past due are never left out."""
    runtime = make_app(GATEWAY_INLINE_JOBS=False, **database).extensions["runtime"]
    first = _requests(runtime, 1, "first")[0]
    now = utcnow()
    with runtime.db.session() as session:
        row = dict(session.execute(select(Request.__table__).where(Request.id == first)).mappings().one())
        row.pop("id")
        session.execute(insert(Request), [{**row, "code": f"R-OPEN-{i:04d}", "sla_state": "approaching",
                                           "sla_due_at": now + LATER * 2} for i in range(1000)])
        session.execute(update(Request).where(Request.id == first).values(sla_due_at=now + LATER * 2))
    _requests(runtime, 1, "late")
    late = _latest(runtime)  # after the thousand: read last in the table's order

    scheduler.check_sla(runtime, now + LATER)

    assert _states(runtime, [late]) == {late: "breached"}
    with runtime.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Request).where(Request.sla_state == "breached")) == 1


def _latest(runtime) -> int:
    with runtime.db.session() as session:
        return session.scalar(select(func.max(Request.id)))


@pytest.mark.errors_expected
def test_resolved_requests_are_all_closed_even_when_one_cannot_be(make_app, database, monkeypatch):
    runtime = make_app(GATEWAY_INLINE_JOBS=False, **database).extensions["runtime"]
    ids = _requests(runtime, 45, "resolved")
    with runtime.db.session() as session:
        session.execute(update(Request).where(Request.id.in_(ids)).values(status="resolved", resolved_at=utcnow()))
    broken = ids[30]
    real_change = closure.change_status

    def change_status(session, runtime_, request, new, actor, note=None, external=None):
        if request.id == broken:
            raise RuntimeError("the closing message cannot be written")
        return real_change(session, runtime_, request, new, actor, note=note, external=external)

    monkeypatch.setattr(closure, "change_status", change_status)
    closure.close_resolved(runtime, utcnow() + timedelta(days=4))

    with runtime.db.session() as session:
        statuses = dict(session.execute(select(Request.id, Request.status).where(Request.id.in_(ids))).all())
    assert statuses == {i: ("resolved" if i == broken else "closed") for i in ids}
