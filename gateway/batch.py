"""Several stored messages per transaction: the pipeline job's batches.

``process_batch`` claims and processes up to GATEWAY_PIPELINE_BATCH waiting messages in one
transaction (one durable commit), with exactly the claim and processing of
``pipeline.process_inbound``: straight through, or, when one of them raises, again with each
inside its own SAVEPOINT. The pure work (parse, normalize, route) is done first, before the
write lock is taken. ``pipeline.process_inbound`` stays the one-message
path of the API and forms, which answer with the decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError

from adapters.errors import MalformedPayloadError, UnsupportedEventError
from dedup import current_rules, early
from dedup.mirror import mirror_of
from normalizer.identity import owners_of

from . import claims, pipeline
from .bounces import record_bounce
from .db import write_first
from .deferral import NotYet, defer
from .direct import InTransaction
from .fresh import check_codes, queue_fresh
from .models import OPEN_STATUSES, Attachment, InboundMessage, Message, utcnow

log = logging.getLogger(__name__)
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected


def process_batch(runtime, inbound_ids: list[int], size: int = 1) -> tuple[list[int], list[int]]:
    """``inbound_ids`` and other due messages, up to ``size`` in all, in ONE transaction: one
    durable commit for the batch. Returns (deliveries, pending attachments) to enqueue, known
    only once the batch is committed.

    The batch is first processed straight through (``_all_at_once``). If any of its messages
    raises (unparseable, deferred, failing, or meeting a concurrent write), that transaction is
    rolled back whole, nothing of it kept, and the batch is processed again with each message
    in its own SAVEPOINT (``_each_in_savepoint``), exactly as ``process_inbound`` does in its
    own transaction: a bad message is rolled back alone and recorded as ignored / failed / to
    retry, the others go on. Most batches hold no bad message, and a SAVEPOINT per message cost
    about a sixth of the batch's work.

    A crash before the commit leaves every message of the batch as it was (nothing was
    committed): the sweeper hands them out again and each is processed once. Messages another
    worker holds (PostgreSQL: FOR UPDATE SKIP LOCKED) are left to it. If the transaction itself
    fails (the database went away, the commit failed), each message is tried again in its own
    transaction, so a failure is counted against the message that caused it."""
    now, size = utcnow(), runtime.db.turns.batch_size(size)  # SQLite, messages arriving: a short batch
    prepared = _prepare_batch(runtime, inbound_ids, size, now)  # before the write lock
    done = _all_at_once(runtime, inbound_ids, size, now, prepared)
    if done is None:
        done = _each_in_savepoint(runtime, inbound_ids, size, now, _prepare_batch(runtime, inbound_ids, size, now))
    runtime.db.turns.checkpoint(runtime.db.engine)  # SQLite: outside the writers' turn
    return done


def _all_at_once(runtime, inbound_ids: list[int], size: int, now, prepared: dict) -> tuple[list, list] | None:
    """The batch in one transaction without SAVEPOINTs; None (and nothing kept) when one of its
    messages raised. The messages are processed as in ``_process_in_savepoint``, flushed one
    by one as a released SAVEPOINT would flush them."""
    lease = timedelta(seconds=runtime.settings["GATEWAY_LEASE_SECONDS"])
    deliveries: list[int] = []
    failed: list[int] = []
    try:
        with runtime.db.turns.batch() as turn, runtime.db.session() as session:  # messages arriving first
            taken = _take_batch(session, inbound_ids, size, now)
            turn.messages = len(taken)
            claimed = _claim_batch(session, taken, now, lease)
            check_codes(session, runtime.rules.current.city.code_prefix, claimed)
            owners, later = Owners(session, prepared, taken, runtime.rules.current), []
            for inbound in claimed:
                failed = [inbound.id]
                ready = prepared.get(inbound.id)
                if ready is not None:
                    ready.owners, ready.later = owners.of(inbound.id), []
                deliveries += pipeline.process(runtime, session, inbound, ready)
                session.flush()
                later += ready.later if ready is not None else []
                owners.done(inbound.id, False, runtime.rules.current)
            failed = []
            deliveries += [queued.id for queued in queue_fresh(session, later)]
            _write_outcomes(session, claimed)
            if (since := _since(prepared)) is not None:
                since.prune(session.connection())
            pending = _pending_attachments(session, taken) if _may_have_attachments(prepared, taken) else []
    except Exception as exc:  # noqa: BLE001 - the batch is done again, one SAVEPOINT per message
        log.info("batch of %s inbound messages rolled back (%s at inbound %s: %s); processing it again with a "
                 "SAVEPOINT per message", len(inbound_ids), type(exc).__name__, failed[0] if failed else "-", exc)
        return None
    return deliveries, pending


def _each_in_savepoint(runtime, inbound_ids: list[int], size: int, now, prepared: dict) -> tuple[list, list]:
    lease = timedelta(seconds=runtime.settings["GATEWAY_LEASE_SECONDS"])
    bounces: list[tuple[int, object]] = []
    deliveries: list[int] = []
    taken: list[int] = []
    try:
        with runtime.db.turns.batch() as turn, runtime.db.session() as session:  # messages arriving first
            taken = _take_batch(session, inbound_ids, size, now)
            turn.messages = len(taken)
            outcomes: list[Claimed] = []
            claimed = _claim_batch(session, taken, now, lease)
            check_codes(session, runtime.rules.current.city.code_prefix, claimed)
            owners, later, since = Owners(session, prepared, taken, runtime.rules.current), [], _since(prepared)
            for inbound in claimed:
                deliveries += _process_in_savepoint(runtime, session, inbound, bounces, outcomes, prepared=prepared,
                                                    owners=owners, later=later, since=since)
            deliveries += [queued.id for queued in queue_fresh(session, later)]
            _write_outcomes(session, outcomes)
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
    write_first(session)
    return _batch_ids(session, wanted, size, now, lock=True)


def _batch_ids(session, wanted: list[int], size: int, now, lock: bool) -> list[int]:
    def locked(statement):
        return statement.with_for_update(skip_locked=True) if lock else statement

    ids = list(session.scalars(locked(select(InboundMessage.id).where(InboundMessage.id.in_(wanted), claims.processable(now))
                                      .order_by(InboundMessage.id))))
    if size > len(ids):
        ids += session.scalars(locked(
            select(InboundMessage.id)
            .where(InboundMessage.state == "received", InboundMessage.attempts < claims.MAX_PROCESSING_ATTEMPTS,
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
    dedup_rules = current_rules(book.directory, set(book.categories)) if rows else None  # a file's stat: once
    for row in rows:
        try:
            prepared[row.id] = pipeline.prepare(runtime, book, row.channel, row.body, row.headers, row.content_type,
                                                row.received_at)
            prepared[row.id].dedup_rules = dedup_rules
        except Exception:  # noqa: BLE001 - met again, and recorded, when processed in the transaction
            continue
    if prepared and early.logged(runtime.db.engine):
        _search_early(runtime, prepared, {row.id: row.received_at for row in rows})
    return prepared


def _search_early(runtime, prepared: dict[int, pipeline.Prepared], received: dict) -> None:
    """SQLite: dedup's candidate search for each message that may become a new request, made
    here, before the write lock, and caught up with inside it (dedup/early.py). A search that
    fails here is simply made inside."""
    mirror = mirror_of(runtime.db.engine)
    try:
        with runtime.db.session() as session, mirror.lock:  # reads only
            connection = session.connection()
            rules = next(iter(prepared.values())).dedup_rules
            since = early.before_lock(connection, mirror, rules)  # first: the log's last id, then the searches
            for inbound_id, ready in prepared.items():
                if ready.decision is not None:
                    report = pipeline.report_of(ready.message, ready.decision, received[inbound_id])
                    ready.early = early.search_early(connection, report, rules, since, OPEN_STATUSES, mirror)
    except Exception:  # noqa: BLE001 - the searches are made inside the transaction instead
        log.warning("dedup's searches before the write lock failed; made inside it", exc_info=True)
        for ready in prepared.values():
            ready.early = None


def _since(prepared: dict[int, pipeline.Prepared]):
    """The batch's catching up (dedup/early.py ``Since``), if its searches were made early."""
    return next((ready.early.since for ready in prepared.values() if ready.early is not None), None)


@dataclass
class Claimed:
    """A message claimed by the batch: its row as the claim left it (read in the same
    statement). The pipeline reads it and sets its outcome on it (state, request,
    processed_at, lease) as it would on the ORM row; the outcomes of the messages whose
    SAVEPOINT was released are written together, in one statement, before the commit."""

    id: int
    channel: str
    body: bytes
    headers: dict
    content_type: str
    received_at: object
    reserved_code: str | None
    attempts: int
    state: str
    lease_until: object
    request_id: int | None
    processed_at: object
    error: str | None
    checked_code: tuple[str, str] | None = None  # (prefix, code) found unused in this transaction


_CLAIMED = [InboundMessage.__table__.c[name] for name in Claimed.__dataclass_fields__ if name != "checked_code"]


def _claim_batch(session, ids: list[int], now, lease) -> list[Claimed]:
    """Claim the batch's messages in ONE statement, exactly as ``claims.claim`` claims one
    (due and not held: received → processing, lease, attempts + 1), reading them back. The
    rows are already the batch's (SQLite: BEGIN IMMEDIATE; PostgreSQL: locked FOR UPDATE
    SKIP LOCKED), so every one of them is claimed; the claim is part of the batch's
    transaction: a crash before the commit leaves them all as they were."""
    if not ids:
        return []
    rows = session.connection().execute(_claim_statement(), {"ids": ids, "now": now, "until": now + lease})
    return sorted((Claimed(*row) for row in rows), key=lambda claimed: claimed.id)


@lru_cache(maxsize=1)
def _claim_statement():
    """Built once: composing a statement costs more CPU than running it on SQLite."""
    table, when = InboundMessage.__table__, InboundMessage.lease_until.type
    return (update(table)
            .where(table.c.id.in_(bindparam("ids", expanding=True)), claims.processable(bindparam("now", type_=when)))
            .values(state="processing", lease_until=bindparam("until", type_=when), attempts=table.c.attempts + 1)
            .returning(*_CLAIMED))


def _write_outcomes(session, outcomes: list[Claimed]) -> None:
    """The processed messages' outcomes, one UPDATE for all (executemany)."""
    if outcomes:
        InTransaction(session).executemany(_outcome_statement(), [
            {"b_id": o.id, "b_state": o.state, "b_request_id": o.request_id, "b_processed_at": o.processed_at,
             "b_lease_until": o.lease_until} for o in outcomes])


@lru_cache(maxsize=1)
def _outcome_statement():
    table = InboundMessage.__table__
    return update(table).where(table.c.id == bindparam("b_id")).values(
        state=bindparam("b_state"), request_id=bindparam("b_request_id"),
        processed_at=bindparam("b_processed_at"), lease_until=bindparam("b_lease_until"))


class Owners:
    """The citizens owning the contact points of the batch's prepared messages, read in ONE
    statement once the batch holds its rows (instead of one per message), and kept for the
    batch. A message is given them only while they are what its own look-up would read: none
    of its contact points was met by an earlier message of the batch (which may have created
    or changed it: two messages of one new citizen), and no message was rolled back since
    (the session was emptied); otherwise it looks them up itself, as before."""

    def __init__(self, session, prepared: dict, taken: list[int], book):
        self.book = book  # its messages' points are those normalized with this rules book
        self.values = {i: {value for _, value in prepared[i].message.contact_points()}
                       for i in taken if i in prepared and prepared[i].book is book}
        self.citizens = owners_of(session, sorted(set().union(*self.values.values())))
        self.met: set[str] = set()
        self.valid = True

    def of(self, inbound_id: int) -> list | None:
        values = self.values.get(inbound_id)
        if not self.valid or values is None or values & self.met:
            return None
        return [c for c in self.citizens if any(point.value in values for point in c.contacts)]

    def done(self, inbound_id: int, rolled_back: bool, book) -> None:
        """After a message: its points were met; one not prepared (or normalized again after
        a reload of the rules) may have met any."""
        self.met |= self.values.get(inbound_id, set())
        self.valid = self.valid and not rolled_back and inbound_id in self.values and book is self.book


def _process_in_savepoint(runtime, session, claimed: Claimed, bounces: list, outcomes: list[Claimed],
                          again: bool = True, prepared: dict | None = None, owners: Owners | None = None,
                          later: list | None = None, since: early.Since | None = None) -> list[int]:
    """``claimed`` processed inside its own SAVEPOINT. Its claim was made for the whole batch,
    outside the SAVEPOINT, so a message that fails is recorded here as ``process_inbound``
    records it (its claim having been rolled back there): unparseable or unsupported, failed /
    ignored with its attempts as before the claim; failing, its attempt counted."""
    inbound = replace(claimed)  # what a failed try set on it is forgotten with its SAVEPOINT
    try:
        with session.begin_nested():
            ready = prepared.pop(inbound.id, None) if prepared else None  # used once: a retry starts afresh
            if ready is not None and owners is not None:
                ready.owners = owners.of(inbound.id)
            if ready is not None and later is not None:
                ready.later = []  # its new request's fresh deliveries, kept only if its SAVEPOINT is released
            deliveries = pipeline.process(runtime, session, inbound, ready)
        outcomes.append(inbound)
        if ready is not None and ready.later:
            later += ready.later
        if owners is not None:
            owners.done(inbound.id, False, runtime.rules.current)
        return deliveries
    except (MalformedPayloadError, UnsupportedEventError) as exc:
        _rolled_back(session, claimed, owners, since)
        state = "ignored" if isinstance(exc, UnsupportedEventError) else "failed"
        session.execute(update(InboundMessage).where(InboundMessage.id == claimed.id)
                        .values(state=state, error=claims.error_text(str(exc)), lease_until=None, attempts=claimed.attempts - 1))
        log.warning("inbound %s %s: %s", claimed.id, state, exc)
        if getattr(exc, "bounce", None) is not None:
            bounces.append((claimed.id, exc.bounce))
        return []
    except NotYet as exc:
        _rolled_back(session, claimed, owners, since)
        defer(session, claimed.id, claimed.attempts - 1, exc)
        return []
    except Exception as exc:
        _rolled_back(session, claimed, owners, since)
        if again and (isinstance(exc, IntegrityError) or getattr(getattr(exc, "orig", None), "sqlstate", None) == DEADLOCK):
            # Another worker's transaction created the same row meanwhile (two messages from
            # one new citizen in two batches on PostgreSQL: the contact point). It is committed
            # now: the message is processed once more, finding that row. Likewise when
            # PostgreSQL broke a deadlock between two batches by failing this statement.
            log.info("inbound %s met a concurrent write (%s); processed again", claimed.id, type(exc.orig).__name__)
            return _process_in_savepoint(runtime, session, replace(claimed, checked_code=None), bounces, outcomes,
                                         again=False, since=since)
        log.exception("inbound %s failed; rolled back alone, the rest of its batch goes on", claimed.id)
        attempts = claimed.attempts  # the claim's + 1 is this failed attempt
        session.execute(update(InboundMessage).where(InboundMessage.id == claimed.id).values(
            attempts=attempts, error=claims.error_text(f"{type(exc).__name__}: {exc}"), lease_until=None,
            state="failed" if attempts >= claims.MAX_PROCESSING_ATTEMPTS else "received"))
        return []


def _rolled_back(session, claimed: Claimed, owners: Owners | None, since: early.Since | None) -> None:
    """A message's SAVEPOINT was rolled back: what the batch kept of what it read may be rows
    that no longer exist."""
    if owners is not None:
        owners.done(claimed.id, True, None)
    if since is not None:
        since.forget()
    session.expunge_all()


def _pending_attachments(session, inbound_ids: list[int]) -> list[int]:
    if not inbound_ids:
        return []
    return list(session.scalars(
        select(Attachment.id).join(Message, Attachment.message_id == Message.id)
        .where(Message.inbound_id.in_(inbound_ids), Attachment.fetch_state == "pending")))


def _may_have_attachments(prepared: dict, taken: list[int]) -> bool:
    """Whether a message of the batch may have stored attachments to fetch: a message was
    not prepared (parsed only inside), or its parsed message carries some. Attachments are
    written only with the message that carries them."""
    return any(i not in prepared or prepared[i].message.attachments for i in taken)


def _attachments_of(runtime, inbound_ids: list[int]) -> list[int]:
    with runtime.db.session() as session:
        return _pending_attachments(session, inbound_ids)
