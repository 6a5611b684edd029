"""Step 1 of the flow: store what arrived, raw and durably, before anyone is answered.

Unique on (channel, provider id): a provider's retry, or a client resending with the same
Idempotency-Key, finds the stored message instead of creating a second one.
"""

from __future__ import annotations

import json
import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.exc import DBAPIError

from adapters.channels.web_form import validate
from adapters.errors import MalformedPayloadError
from normalizer.codes import new_code

from . import pipeline
from .models import InboundMessage, Request, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    """What ``insert_inbound`` found or made. On a provider's retry (``created`` False), the
    headers stored the first time and the request's code (or the one reserved for it)."""

    id: int
    created: bool
    headers: dict
    code: str | None


_TABLE = InboundMessage.__table__
_INSERTS: dict[str, object] = {}
MAX_PROVIDER_ID = _TABLE.c.provider_id.type.length  # PostgreSQL enforces it; SQLite would not
MAX_IDEMPOTENCY_KEY = 200  # stored as "key:…" among the provider ids
_TURN: ContextVar = ContextVar("intake_turn", default=None)  # while ``write`` runs (gateway/turns.py)


def _insert(dialect: str):
    """INSERT … ON CONFLICT (channel, provider_id) DO NOTHING RETURNING id, built once per
    dialect (SQLite ≥ 3.35 and PostgreSQL): a retry costs no exception and no rollback."""
    if dialect not in _INSERTS:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise RuntimeError(f"intake: no upsert for the {dialect} dialect")
        _INSERTS[dialect] = (insert(_TABLE).on_conflict_do_nothing(index_elements=["channel", "provider_id"])
                             .returning(_TABLE.c.id))
    return _INSERTS[dialect]


_EXISTING = (select(_TABLE.c.id, _TABLE.c.headers, _TABLE.c.reserved_code, Request.code)
             .outerjoin(Request, Request.id == _TABLE.c.request_id)
             .where(_TABLE.c.channel == bindparam("channel"), _TABLE.c.provider_id == bindparam("provider_id")))


def insert_inbound(connection, channel: str, provider_id: str, body: bytes, content_type: str,
                   headers: dict | None = None, code: str | None = None, sender: str | None = None) -> Stored:
    """One SQLAlchemy Core statement on ``connection``; the caller commits (durably) before
    answering. ``code``: the tracking code reserved for the request to come, if any;
    ``sender``: who sent it, where the webhook needs to find the sender's waiting messages.
    Inside ``write``, on SQLite, it first waits for its turn (gateway/turns.py): the batch
    under way, if any, then this message, then the pipeline's next batch; a write of one row
    is committed with the rows of the process's other writes waiting for the same turn
    (gateway/grouped.py), before this returns."""
    if len(provider_id) > MAX_PROVIDER_ID:  # no provider's id is that long: refused, not a database error
        raise MalformedPayloadError(f"message id longer than {MAX_PROVIDER_ID} characters", field="id")
    headers = headers or {}
    statement, params = _insert(connection.dialect.name), {
        "channel": channel, "provider_id": provider_id, "body": body, "content_type": content_type,
        "headers": headers, "received_at": utcnow(), "reserved_code": code, "state": "received",
        "attempts": 0, "sender": sender}
    turn = _TURN.get()
    if turn is not None and turn.group is not None:  # SQLite, one row: committed with the process's others
        new_id = turn.group.insert(connection, statement, params)
    else:
        if turn is not None:
            turn.write()
        new_id = connection.execute(statement, params).scalar()
    if new_id is not None:
        return Stored(new_id, True, headers, code)
    row = connection.execute(_EXISTING, {"channel": channel, "provider_id": provider_id}).one()
    log.info("inbound %s/%s already stored (id %s): provider retry ignored", channel, provider_id[:12], row.id)
    return Stored(row.id, False, dict(row.headers or {}), row.code or row.reserved_code)


def write(runtime, work, single: bool = True):
    """``work(connection)`` on this thread's intake connection, committed (durably) when this
    returns. ``connection`` runs SQLAlchemy Core statements on the driver's own connection
    (gateway/direct.py ``DirectConnection``): the webhooks' statements without the pool's
    check-out and SQLAlchemy's execution path around each.

    ``single``: ``work`` writes with ONE statement (a webhook's INSERT; reads may come before
    it). On PostgreSQL it then runs in autocommit: that INSERT is its own transaction, durable
    (synchronous_commit) when the server answers it, so the SQL a webhook costs is its
    statements alone, not BEGIN and COMMIT around them (under READ COMMITTED a transaction gave
    the look-up before it no firmer snapshot). Several writes (a Messenger batch) stay in one
    transaction: one commit, all or nothing. SQLite: always one transaction, and the webhook
    writes before the pipeline's next batch (gateway/turns.py); a single write's row is
    committed in one transaction with those of the process's other single writes waiting for
    the writer's turn at the same time (gateway/grouped.py), by whichever of them has it first.

    No pre-ping: a connection the server dropped (a restart) fails its statement, is closed,
    and ``work`` runs once more on a new connection. Running it again is harmless: the INSERT
    is ON CONFLICT DO NOTHING on (channel, provider id), so a write the first try committed
    before its reply was lost is found, not doubled (its job is then left to the sweeper, as
    for a lost push). If the server is still down the error goes up: a 5xx, and the provider
    retries later."""
    for attempt in (1, 2):
        connection = runtime.db.direct()
        try:
            with runtime.db.turns.intake() as turn:
                turn.group = runtime.db.turns.group if single else None
                token = _TURN.set(turn)  # insert_inbound takes it (SQLite: before the pipeline's next batch)
                try:
                    if not single:
                        connection.begin()
                    result = work(connection)
                    connection.commit()
                except BaseException:
                    connection.rollback()
                    raise
                finally:
                    _TURN.reset(token)
                return result
        except DBAPIError as exc:
            if attempt == 2 or not exc.connection_invalidated:
                raise
            log.warning("intake: the database dropped a connection (%s); writing on a new one",
                        type(exc.orig).__name__)


def store_inbound(runtime, channel: str, provider_id: str, body: bytes, content_type: str,
                  headers: dict | None = None, reserve_code: bool = False, code: str | None = None) -> tuple[int, bool]:
    """(inbound id, created). Committed when this returns: the message is safe.

    ``reserve_code`` draws a tracking code for the request to come; a caller that must answer
    with it draws it first (``new_code``) and passes it as ``code``, saving a re-read."""
    if reserve_code and code is None:
        code = new_code(runtime.rules.current.city.code_prefix, utcnow().year)
    stored = write(runtime, lambda connection: insert_inbound(connection, channel, provider_id, body,
                                                             content_type, headers, code))
    return stored.id, stored.created


@dataclass
class Submitted:
    code: str
    request_id: int | None
    created: bool
    joined: bool = False  # added to an open request of the citizen's, not a request of its own


def submit(runtime, document: dict, idempotency_key: str | None = None) -> Submitted:
    """The gateway's own intake (API, /report, counter): validate, store, process now.

    Raises MalformedPayloadError naming the field at fault; nothing is stored then.
    """
    body = json.dumps(document, ensure_ascii=False).encode()
    submission = validate(body)
    if submission.category is not None and submission.category not in runtime.rules.current.categories:
        raise MalformedPayloadError(f"category: unknown category '{submission.category}'", field="category")
    if idempotency_key and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise MalformedPayloadError(f"Idempotency-Key: at most {MAX_IDEMPOTENCY_KEY} characters",
                                    field="Idempotency-Key")
    provider_id = f"key:{idempotency_key}" if idempotency_key else f"uuid:{uuid.uuid4()}"
    with runtime.db.turns.arriving():  # SQLite: the citizen does not wait for batch after batch
        inbound_id, created = store_inbound(runtime, "web_form", provider_id, body, "application/json",
                                            reserve_code=True)
        made = _process_now(runtime, inbound_id) if created else []
    try:
        for delivery_id in made:
            runtime.jobs.enqueue("deliver", delivery_id)
    except Exception:  # the deliveries are stored: the outbox's sweeper sends them
        log.exception("inbound %s processed, its deliveries not queued yet", inbound_id)
    return _outcome(runtime, inbound_id, created)


def _process_now(runtime, inbound_id: int) -> list[int]:
    """The stored submission made into a request, in an intake write's turn (SQLite: after the
    batch under way, before the next); the ids of its deliveries."""
    try:
        with runtime.db.turns.intake() as turn:
            turn.write()
            return pipeline.process_inbound(runtime, inbound_id)
    except Exception:
        # Stored, so not lost: the sweeper processes it later; the citizen still gets the code.
        log.exception("inbound %s stored but not processed yet", inbound_id)
        return []


def _outcome(runtime, inbound_id: int, created: bool) -> Submitted:
    with runtime.db.session() as session:
        inbound = session.get(InboundMessage, inbound_id)
        if inbound.request_id is not None:
            code = session.scalar(select(Request.code).where(Request.id == inbound.request_id))
            return Submitted(code, inbound.request_id, created, joined=code != inbound.reserved_code)
        return Submitted(inbound.reserved_code, None, created)
