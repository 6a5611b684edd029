"""Rows of a request created in the current transaction, written with one Core INSERT …
RETURNING each instead of ORM objects: the request itself, and its outbox rows.

Their idempotency keys carry the request's code, unused until this transaction: no row can
hold them yet, so the look-up ``outbox.add_delivery`` makes first would find nothing (the
unique key still refuses a second row). Nothing reads these rows back through the ORM in
the transaction; the caller only needs their ids (and state) to enqueue them once committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select

from normalizer.codes import new_code

from .direct import InTransaction
from .models import Delivery, Request, utcnow

_GIVEN = ("request_id", "purpose", "target", "settings", "idempotency_key")


@dataclass(frozen=True)
class Queued:
    """What the pipeline keeps of a delivery it queued: enough to enqueue it after the commit."""

    id: int
    state: str = "pending"


def queue_fresh(session, rows: list[dict]) -> list[Queued]:
    """Insert ``rows`` (request_id, purpose, target, settings, idempotency_key) as pending
    deliveries, in one statement; returns them in the order given."""
    if not rows:
        return []
    now = utcnow()
    values = [{"state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now,
               **{key: row[key] for key in _GIVEN}} for row in rows]  # every row the same keys
    # Matched by their unique keys: a multi-row INSERT's RETURNING follows no order.
    ids = dict(InTransaction(session).insert_many(Delivery.__table__, values, ("idempotency_key", "id")))
    return [Queued(ids[row["idempotency_key"]]) for row in values]


class Fresh(SimpleNamespace):
    """A request created in this transaction, as its row's values (no ORM object: building
    and attaching one cost more than writing the row). The flow reads it; where it changes
    the request (a duplicate's link, an acknowledgement) it loads the ORM object first."""


def insert_request(session, book, inbound, values: dict) -> Fresh:
    """Write the request ``values`` (with an unused code; a column left out or None takes its
    default, as the ORM did) with one INSERT … RETURNING id."""
    values = dict(_EMPTY_REQUEST, code=unused_code(session, book, inbound), **values)
    for key, default in _REQUEST_DEFAULTS.items():
        if values.get(key, 0) is None:
            values[key] = default.arg(None) if default.is_callable else default.arg
    session.flush()  # what the ORM still holds (the citizen) is written first: the request refers to it
    return Fresh(id=InTransaction(session).execute(_request_insert(), values).scalar(), **values)


# Every column of a new request that the pipeline does not set, at its default: the Fresh
# request then has every column the ORM object would have. (A column the database fills
# itself is left out: nothing in the flow reads it.)
_EMPTY_REQUEST = {column.key: None for column in Request.__table__.columns
                  if column.key != "id" and column.server_default is None}
_REQUEST_DEFAULTS = {column.key: column.default for column in Request.__table__.columns
                     if column.default is not None and (column.default.is_scalar or column.default.is_callable)}


@lru_cache(maxsize=1)
def _request_insert():
    return insert(Request.__table__).returning(Request.__table__.c.id)


def unused_code(session, book, inbound) -> str:
    """The message's reserved code, else a new one, unused by any request. A batch checks its
    messages' codes together first (``check_codes``): a code found unused then is taken as is."""
    checked = getattr(inbound, "checked_code", None)  # (prefix, code) found unused in this transaction
    if checked is not None and checked[0] == book.city.code_prefix:
        return checked[1]
    code = inbound.reserved_code
    while code is None or session.scalar(_code_statement(), {"code": code}) is not None:
        code = new_code(book.city.code_prefix, inbound.received_at.year)
    return code


def check_codes(session, prefix: str, claimed: list) -> None:
    """A tracking code for each message of a batch (its reserved one, else a new one), checked
    unused in ONE statement instead of one per new request; ``unused_code`` takes it (a used
    one is replaced there as before). Two messages of the batch given the same new code would
    meet the requests' unique key: the second is processed again, without it."""
    wanted = {c.id: c.reserved_code or new_code(prefix, c.received_at.year) for c in claimed}
    used = set(session.connection().scalars(_codes_statement(), {"codes": list(wanted.values())})) if wanted else set()
    for c in claimed:
        if wanted[c.id] not in used:
            c.checked_code = (prefix, wanted[c.id])


@lru_cache(maxsize=1)
def _code_statement():
    return select(Request.id).where(Request.code == bindparam("code"))


@lru_cache(maxsize=1)
def _codes_statement():
    return select(Request.__table__.c.code).where(Request.__table__.c.code.in_(bindparam("codes", expanding=True)))
