"""Outbox rows of a request created in the current transaction, written with one Core
INSERT … RETURNING instead of ORM objects.

Their idempotency keys carry the request's code, unused until this transaction: no row can
hold them yet, so the look-up ``outbox.add_delivery`` makes first would find nothing (the
unique key still refuses a second row). Nothing reads these rows back through the ORM in
the transaction; the caller only needs their ids (and state) to enqueue them once committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import insert

from .models import Delivery, utcnow


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
    values = [{"state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now, **row} for row in rows]
    ids = session.connection().scalars(_insert(), values).all()
    return [Queued(id) for id in ids]


@lru_cache(maxsize=1)
def _insert():
    return insert(Delivery.__table__).returning(Delivery.__table__.c.id, sort_by_parameter_order=True)
