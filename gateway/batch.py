"""Several stored messages per transaction: the pipeline job's batches.

``process_batch`` claims and processes up to GATEWAY_PIPELINE_BATCH waiting messages in one
transaction (one durable commit), each inside its own SAVEPOINT with exactly the claim and
processing of ``pipeline.process_inbound``; the pure work (parse, normalize, route) is done
first, before the write lock is taken. ``pipeline.process_inbound`` stays the one-message
path of the API and forms, which answer with the decision.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from adapters.errors import MalformedPayloadError, UnsupportedEventError

from . import pipeline
from .bounces import record_bounce
from .models import Attachment, InboundMessage, Message, utcnow

log = logging.getLogger(__name__)
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected


def process_batch(runtime, inbound_ids: list[int], size: int = 1) -> tuple[list[int], list[int]]:
    """``inbound_ids`` and other due messages, up to ``size`` in all, in ONE transaction: one
    durable commit for the batch. Returns (deliveries, pending attachments) to enqueue, known
    only once the batch is committed.

    Each message is claimed and processed inside its own SAVEPOINT, exactly as
    ``process_inbound`` does in its own transaction: a bad message (unparseable, or failing)
    is rolled back alone and recorded as ignored / failed / to retry, the others go on. A crash
    before the commit leaves every message of the batch as it was (nothing was committed): the
    sweeper hands them out again and each is processed once. Messages another worker holds
    (PostgreSQL: FOR UPDATE SKIP LOCKED) are left to it. If the transaction itself fails (the
    database went away, the commit failed), each message is tried again in its own
    transaction, so a failure is counted against the message that caused it."""
    now = utcnow()
    lease = timedelta(seconds=runtime.settings["GATEWAY_LEASE_SECONDS"])
    bounces: list[tuple[int, object]] = []
    deliveries: list[int] = []
    taken: list[int] = []
    prepared = _prepare_batch(runtime, inbound_ids, size, now)  # before the write lock
    try:
        with runtime.db.session() as session:
            taken = _take_batch(session, inbound_ids, size, now)
            for inbound_id in taken:
                deliveries += _process_in_savepoint(runtime, session, inbound_id, now, lease, bounces,
                                                    prepared=prepared)
            pending = _pending_attachments(session, taken)
    except Exception:
        if not taken:
            raise
        log.exception("batch of %s inbound messages failed as a whole; processing them one by one", len(taken))
        deliveries, pending = [], []
        for inbound_id in taken:
            try:
                deliveries += pipeline.process_inbound(runtime, inbound_id)
            except Exception:
                log.exception("inbound %s failed; it will be retried", inbound_id)
        return deliveries, _attachments_of(runtime, taken)
    for inbound_id, bounce in bounces:
        record_bounce(runtime, inbound_id, bounce)
    return deliveries, pending


def _take_batch(session, wanted: list[int], size: int, now) -> list[int]:
    """The due messages of the batch: ``wanted`` (those still due), then the oldest waiting
    ones up to ``size``; processed in the order received. On SQLite the transaction takes the write lock first (BEGIN IMMEDIATE: its
    savepoints then nest in it, and no read snapshot can go stale before the first write); on
    PostgreSQL the rows are locked, skipping those another worker holds."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return _batch_ids(session, wanted, size, now, lock=True)


def _batch_ids(session, wanted: list[int], size: int, now, lock: bool) -> list[int]:
    def locked(statement):
        return statement.with_for_update(skip_locked=True) if lock else statement

    ids = list(session.scalars(locked(select(InboundMessage.id).where(InboundMessage.id.in_(wanted), pipeline.processable(now))
                                      .order_by(InboundMessage.id))))
    if size > len(ids):
        ids += session.scalars(locked(
            select(InboundMessage.id)
            .where(InboundMessage.state == "received", InboundMessage.attempts < pipeline.MAX_PROCESSING_ATTEMPTS,
                   InboundMessage.id.not_in(wanted))
            .order_by(InboundMessage.state, InboundMessage.id).limit(size - len(ids))
        ))
    return sorted(ids)


def _prepare_batch(runtime, wanted: list[int], size: int, now) -> dict[int, pipeline.Prepared]:
    """Parse, normalize (language detection included) and route (categorise, district, rules)
    the messages the batch will most likely take, outside any write transaction: on SQLite the
    write lock is then held only for the database work. Nothing is written or claimed here;
    a message the batch takes without having been prepared (another worker took the ones read
    here meanwhile) is simply done inside, and one that fails here is done inside again, so
    its error is met and recorded where it always was."""
    book = runtime.rules.current
    prepared: dict[int, pipeline.Prepared] = {}
    with runtime.db.session() as session:  # reads only: no write lock, nothing held
        ids = _batch_ids(session, wanted, size, now, lock=False)
        rows = session.execute(select(InboundMessage.id, InboundMessage.channel, InboundMessage.body,
                                      InboundMessage.headers, InboundMessage.content_type,
                                      InboundMessage.received_at).where(InboundMessage.id.in_(ids))).all() if ids else []
    for row in rows:
        try:
            prepared[row.id] = pipeline.prepare(runtime, book, row.channel, row.body, row.headers, row.content_type,
                                        row.received_at)
        except Exception:  # noqa: BLE001 - met again, and recorded, when processed in the transaction
            continue
    return prepared


def _process_in_savepoint(runtime, session, inbound_id: int, now, lease, bounces: list,
                          again: bool = True, prepared: dict | None = None) -> list[int]:
    try:
        with session.begin_nested():
            inbound = pipeline.claim(session, inbound_id, now, lease)
            ready = prepared.pop(inbound_id, None) if prepared else None  # used once: a retry starts afresh
            return [] if inbound is None else pipeline.process(runtime, session, inbound, ready)
    except (MalformedPayloadError, UnsupportedEventError) as exc:
        session.expire_all()  # what was read inside the savepoint may be what it rolled back
        state = "ignored" if isinstance(exc, UnsupportedEventError) else "failed"
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                        .values(state=state, error=str(exc)[:2000], lease_until=None))
        log.warning("inbound %s %s: %s", inbound_id, state, exc)
        if getattr(exc, "bounce", None) is not None:
            bounces.append((inbound_id, exc.bounce))
        return []
    except Exception as exc:
        session.expire_all()  # what was read inside the savepoint may be what it rolled back
        if again and (isinstance(exc, IntegrityError) or getattr(getattr(exc, "orig", None), "sqlstate", None) == DEADLOCK):
            # Another worker's transaction created the same row meanwhile (two messages from
            # one new citizen in two batches on PostgreSQL: the contact point). It is committed
            # now: the message is processed once more, finding that row. Likewise when
            # PostgreSQL broke a deadlock between two batches by failing this statement.
            log.info("inbound %s met a concurrent write (%s); processed again", inbound_id, type(exc.orig).__name__)
            return _process_in_savepoint(runtime, session, inbound_id, now, lease, bounces, again=False)
        log.exception("inbound %s failed; rolled back alone, the rest of its batch goes on", inbound_id)
        pipeline.count_failure(session, inbound_id, exc)
        return []


def _pending_attachments(session, inbound_ids: list[int]) -> list[int]:
    if not inbound_ids:
        return []
    return list(session.scalars(
        select(Attachment.id).join(Message, Attachment.message_id == Message.id)
        .where(Message.inbound_id.in_(inbound_ids), Attachment.fetch_state == "pending")))


def _attachments_of(runtime, inbound_ids: list[int]) -> list[int]:
    with runtime.db.session() as session:
        return _pending_attachments(session, inbound_ids)
