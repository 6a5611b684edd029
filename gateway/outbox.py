"""The durable outbox: deliveries to departments' tools and messages to citizens.

States: pending → sending → delivered, or back to pending with backoff (transient error),
or dead (permanent error, misconfiguration, or too many attempts): dead letters wait for an
administrator. Deliveries are claimed atomically with a lease before they are sent, so two
workers never send one at once; a worker that dies mid-send leaves a lease that expires, and
the sweeper hands the delivery out again under the same idempotency key.

A worker claims a batch (up to ``GATEWAY_DELIVERY_BATCH`` due deliveries, one statement and
one commit; ``FOR UPDATE SKIP LOCKED`` on PostgreSQL), then sends them one by one and records
each outcome in its own commit as soon as it is known: a killed worker leaves at most one
message sent but not recorded (resent under the same key), and its unsent ones to the lease.
A batch's lease is the lease plus a quarter of it: a delivery whose send has not started
within that quarter is handed back (pending, its attempt not counted), so every send starts
with at least ``GATEWAY_LEASE_SECONDS`` of lease ahead of it, as for a single claim.
The hot path uses Core statements, not the ORM: it runs hundreds of times a second. A batch
uses one pooled connection throughout (``outcomes.Records``); on PostgreSQL each outcome is a single
statement in autocommit (data-modifying CTEs): one round trip and one durable commit.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import and_, bindparam, or_, select, update

from adapters.base import OutboundMessage, RequestSummary
from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

from .models import Attachment, Delivery, Event, Request, utcnow
from .outcomes import HELD, Records, finish

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)
_D = Delivery.__table__
_CLAIMED = (_D.c.id, _D.c.request_id, _D.c.purpose, _D.c.target, _D.c.settings, _D.c.idempotency_key, _D.c.attempts,
            _D.c.created_at)
_SUMMARY = ("code", "category", "department", "priority", "status", "channel", "language", "description", "address",
            "district", "lat", "lon", "sla_due_at", "created_at", "rule")


def add_delivery(session, request: Request | None, purpose: str, target: str, settings: dict, key: str) -> Delivery:
    """The outbox row for ``key``; an existing one is returned, never doubled. ``request`` is
    None only for a chat reply that concerns no request."""
    existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == key))
    if existing is not None:
        return existing
    delivery = Delivery(
        request_id=request.id if request is not None else None, purpose=purpose, target=target, settings=settings, idempotency_key=key
    )
    session.add(delivery)
    session.flush()
    return delivery


def _due(now):
    """Due now, or held by a sender whose lease ran out (it died)."""
    return or_(and_(_D.c.state == "pending", _D.c.next_attempt_at <= now),
               and_(_D.c.state == "sending", _D.c.lease_until < now))


# The hot path's statements are built once (bound parameters), not per delivery: building and
# coercing them cost more CPU than running them.
_DUE = _due(bindparam("now", type_=_D.c.next_attempt_at.type))
_TAKE = {"state": "sending", "lease_until": bindparam("lease_to", type_=_D.c.lease_until.type),
         "attempts": _D.c.attempts + 1}
_CLAIM_ONE = update(_D).where(_D.c.id == bindparam("first_id"), _DUE).values(_TAKE).returning(*_CLAIMED)
_RELEASE = update(_D).where(_D.c.id.in_(bindparam("row_ids", expanding=True)), HELD).values(
    state="pending", lease_until=None, attempts=_D.c.attempts - 1)


_NOW = bindparam("now", type_=_D.c.next_attempt_at.type)
_EXPIRED = and_(_D.c.state == "sending", _D.c.lease_until < _NOW)
_PENDING = and_(_D.c.state == "pending", _D.c.next_attempt_at <= _NOW)


@lru_cache(maxsize=32)
def _claim_many(condition: str, limit: int):
    """Claim the first ``limit`` rows meeting ``condition`` ("expired" or "pending"), each in
    the order of the index on (state, next_attempt_at): one condition per statement, so that
    a backlog of a million due rows is read in index order, not sorted at every claim.
    On PostgreSQL, FOR UPDATE SKIP LOCKED: concurrent workers take different rows instead of
    waiting for each other, and a row is locked only after ``condition`` is checked again on
    its latest version. SQLite ignores FOR UPDATE: its single writer runs the whole statement
    at once. (The condition is not repeated outside the subquery: SQLite would then read every
    due row through the index instead of the ``limit`` ids through the primary key.)"""
    where, order = (_EXPIRED, _D.c.lease_until) if condition == "expired" else (_PENDING, _D.c.next_attempt_at)
    due = select(_D.c.id).where(where).order_by(order, _D.c.id).limit(limit).with_for_update(skip_locked=True)
    return update(_D).where(_D.c.id.in_(due.scalar_subquery())).values(_TAKE).returning(*_CLAIMED)


def claim_batch(connection, now: datetime, lease_until: datetime, limit: int, first: int | None = None) -> list:
    """Take up to ``limit`` due deliveries for sending (``first`` before the others, if it is
    due; then those whose sender died; then the oldest due), in the caller's transaction:
    rows with the new attempt count."""
    params = {"now": now, "lease_to": lease_until}
    rows = []
    if first is not None:
        rows += connection.execute(_CLAIM_ONE, {**params, "first_id": first}).all()
    for condition in ("expired", "pending"):
        if limit > len(rows):
            rows += sorted(connection.execute(_claim_many(condition, limit - len(rows)), params).all(),
                           key=lambda row: row.id)
    return rows


def claim(session, delivery_id: int, now: datetime, lease: timedelta) -> bool:
    """Take the delivery for sending if it is due and nobody holds it."""
    return bool(claim_batch(session.connection(), now, now + lease, 0, first=delivery_id))


def run_delivery(runtime, delivery_id: int) -> str | None:
    """Claim, send, record this one delivery. Returns the new state, or None if it was not
    ours to send (not due, or held by another worker)."""
    return run_batch(runtime, first=delivery_id, limit=1).get(delivery_id)


def run_batch(runtime, first: int | None = None, limit: int | None = None) -> dict[int, str]:
    """Claim up to ``limit`` due deliveries (``first`` among them if it is due) in one commit,
    send them one by one, record each outcome. Returns {delivery id: new state}."""
    settings = runtime.settings
    limit = limit or int(settings["GATEWAY_DELIVERY_BATCH"])
    lease = timedelta(seconds=settings["GATEWAY_LEASE_SECONDS"])
    budget = lease / 4 if limit > 1 else timedelta(0)
    now = utcnow()
    lease_until = now + lease + budget
    records = Records(runtime.db.engine)
    try:
        with records.connection.begin():  # the claim and the batch's request summaries: one commit
            rows = claim_batch(records.connection, now, lease_until, limit, first)
            summaries = _summaries(runtime, records.connection,
                                   {row.request_id for row in rows if row.purpose == "sink"})
        outcomes: dict[int, str] = {}
        for position, row in enumerate(rows):
            if position and utcnow() > now + budget:
                _release(runtime, records, rows[position:], lease_until)
                break
            outcomes[row.id] = _send_and_record(runtime, records, row, lease_until, summaries)
        return outcomes
    finally:
        records.close()


def _send_and_record(runtime, records, row, lease_until: datetime, summaries: dict) -> str:
    try:
        receipt = _send(runtime, row, summaries)
    except TransientDeliveryError as exc:
        return _retry_later(runtime, records, row, lease_until, str(exc), exc.retry_after)
    except (PermanentDeliveryError, AdapterMisconfiguredError) as exc:
        return _dead(runtime, records, row, lease_until, f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug with this one delivery: retried (then dead), the batch goes on
        if type(exc).__module__.startswith("rq."):  # the worker's job timeout: the job must stop
            raise
        log.error("delivery %s raised %s", row.id, type(exc).__name__, exc_info=True)
        return _retry_later(runtime, records, row, lease_until, f"unexpected {type(exc).__name__}", None)
    return _delivered(runtime, records, row, lease_until, receipt.external_id)


def _send(runtime, row, summaries: dict):
    """Send outside any database transaction."""
    if row.purpose == "sink":
        sink = runtime.sink(row.target)
        # "attempt" lets a sink without idempotency keys look for an earlier, unrecorded success.
        return sink.deliver(summaries[row.request_id], {**row.settings, "attempt": row.attempts}, row.idempotency_key)
    channel = runtime.outbound(row.target)
    if channel is None:
        raise AdapterMisconfiguredError(runtime.misconfiguration("outbound", row.target)
                                        or f"no outbound adapter for {row.target}")
    message = row.settings["message"]
    if "to" in message and message["to"] is None:  # erased: its citizen was forgotten (gateway/retention.py)
        raise PermanentDeliveryError("no address to send to: the citizen's personal data was erased")
    # The attempt and the row's creation likewise: a channel without idempotency keys (SMS)
    # looks for an earlier, unrecorded send made since the message was queued.
    return channel.send(OutboundMessage(idempotency_key=row.idempotency_key, attempt=row.attempts,
                                        queued_at=row.created_at, **message))


def _summaries(runtime, connection, request_ids: set) -> dict:
    """The summaries of these requests, in two queries (the requests, their attachments)."""
    if not request_ids:
        return {}
    requests, attachments = Request.__table__, Attachment.__table__
    rows = connection.execute(select(requests.c.id, *(requests.c[name] for name in _SUMMARY))
                              .where(requests.c.id.in_(request_ids))).all()
    files: dict[int, list[int]] = {}
    for request_id, attachment_id in connection.execute(
            select(attachments.c.request_id, attachments.c.id)
            .where(attachments.c.request_id.in_(request_ids)).order_by(attachments.c.id)):
        files.setdefault(request_id, []).append(attachment_id)
    return {row.id: summarize(runtime, row, files.get(row.id, ())) for row in rows}


def summarize(runtime, request, attachment_ids=None) -> RequestSummary:
    """What a sink receives about ``request`` (a Request, or a row with the same columns and
    ``attachment_ids`` given)."""
    book = runtime.rules.current
    language = "fr"
    department = book.departments.get(request.department or "")
    if department is not None:
        language = department.language
    if attachment_ids is None:
        attachment_ids = [a.id for a in request.attachments]
    return RequestSummary(
        code=request.code,
        category=request.category,
        category_name=book.category_name(request.category, language),
        department=request.department or "",
        priority=request.priority,
        status=request.status,
        channel=request.channel,
        language=request.language,
        description=request.description,
        address=request.address,
        district=request.district,
        lat=request.lat,
        lon=request.lon,
        sla_due_at=request.sla_due_at,
        created_at=request.created_at,
        track_url=runtime.public_url(f"/track/{request.code}"),
        rule=request.rule,
        attachments=tuple(runtime.public_url(f"/attachments/{i}") for i in attachment_ids),
    )


def _release(runtime, records, rows, lease_until: datetime) -> None:
    """Hand back claimed deliveries whose send did not start in time: due again at once, and
    the attempt they did not make is not counted; a new job sends them (the batch's job
    stood for them too), not the sweeper seconds later."""
    records.write(lambda connection: connection.execute(
        _RELEASE, {"row_ids": [row.id for row in rows], "held": lease_until}))
    log.info("%s deliveries handed back: the batch ran out of time", len(rows))
    runtime.jobs.enqueue("deliver_batch", rows[0].id)


def _delivered(runtime, records, row, lease_until: datetime, external_id: str | None) -> str:
    finish(records, row, lease_until, state="delivered", delivered_at=utcnow(), external_id=external_id,
            lease_until=None, last_error=None)
    runtime.record_health(f"{row.purpose}:{row.target}", ok=True)
    log.info("delivery %s delivered", row.id)
    return "delivered"


def _retry_later(runtime, records, row, lease_until: datetime, error: str, retry_after: float | None) -> str:
    if row.attempts >= runtime.settings["GATEWAY_MAX_ATTEMPTS"]:
        return _dead(runtime, records, row, lease_until, f"gave up after {row.attempts} attempts: {error}")
    delay = backoff(runtime.settings["GATEWAY_BACKOFF_SECONDS"], row.attempts, retry_after)
    finish(records, row, lease_until, state="pending", next_attempt_at=utcnow() + delay, last_error=error,
            lease_until=None)
    runtime.record_health(f"{row.purpose}:{row.target}", ok=False, detail=error)
    log.warning("delivery %s failed (attempt %s), retry in %ss: %s", row.id, row.attempts,
                int(delay.total_seconds()), error)
    return "pending"


def _dead(runtime, records, row, lease_until: datetime, error: str) -> str:
    finish(records, row, lease_until, state="dead", last_error=error, lease_until=None)
    runtime.record_health(f"{row.purpose}:{row.target}", ok=False, detail=error)
    log.error("delivery %s is dead: %s", row.id, error)
    return "dead"


def backoff(base: float, attempts: int, retry_after: float | None = None) -> timedelta:
    """Exponential backoff with ±20 % jitter, or the provider's Retry-After if longer."""
    seconds = base * 2 ** max(attempts - 1, 0) * random.uniform(0.8, 1.2)
    seconds = max(seconds, retry_after or 0)
    return min(timedelta(seconds=seconds), MAX_BACKOFF)


def due_deliveries(runtime, limit: int = 500) -> list[int]:
    """Deliveries due now, and those whose sender died holding them."""
    now = utcnow()
    with runtime.db.session() as session:
        return list(session.scalars(
            select(Delivery.id).where(_due(now)).order_by(Delivery.next_attempt_at, Delivery.id)
            .limit(limit)
        ))


def retry_dead(runtime, delivery_id: int, actor: str) -> bool:
    """An administrator sends a dead delivery again: back to pending, its earlier attempts
    counted as one. Its next attempt is then a retry (2), so a sink or channel without
    idempotency keys first looks for what an earlier attempt may have got accepted (a
    delivery can die of a lost answer), and it has GATEWAY_MAX_ATTEMPTS - 1 more tries."""
    with runtime.db.session() as session:
        result = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "dead")
            .values(state="pending", attempts=1, next_attempt_at=utcnow(), last_error=None)
        )
        if result.rowcount != 1:
            return False
        delivery = session.get(Delivery, delivery_id)
        session.add(Event(request_id=delivery.request_id, actor=actor, type="delivery_requeued",
                          data={"delivery": delivery_id, "target": delivery.target}))
    runtime.jobs.enqueue("deliver", delivery_id)
    return True
