"""A stored message's processing, as its row keeps it: claimed with a lease (received →
processing), then processed, or failed / ignored with its error, or counted and left to be
tried again; and the messages still to process, which the sweeper hands out again.

The claim and the outcome are what make processing safe to repeat: two workers given the
same message cannot both claim it, and a message whose worker died is claimable again once
its lease has expired. After MAX_PROCESSING_ATTEMPTS failed attempts a message waits for an
agent.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from sqlalchemy import bindparam, or_, select, update

from .models import InboundMessage, utcnow

log = logging.getLogger(__name__)
MAX_PROCESSING_ATTEMPTS = 5


def claim(session, inbound_id: int, now, lease) -> InboundMessage | None:
    """Take the message if it is due and nobody holds it; read in the same statement."""
    return session.scalars(
        _claim_statement(), {"inbound_id": inbound_id, "now": now, "until": now + lease},
        execution_options={"synchronize_session": False},  # the row read back is the one claimed
    ).one_or_none()


@lru_cache(maxsize=1)
def _claim_statement():
    """Built once: composing a statement costs more CPU than running it on SQLite."""
    when = InboundMessage.lease_until.type
    return (
        update(InboundMessage)
        .where(InboundMessage.id == bindparam("inbound_id"), processable(bindparam("now", type_=when)))
        .values(state="processing", lease_until=bindparam("until", type_=when), attempts=InboundMessage.attempts + 1)
        .returning(InboundMessage)
    )


def processable(now):
    return or_(
        (InboundMessage.state == "received") & (InboundMessage.attempts < MAX_PROCESSING_ATTEMPTS),
        (InboundMessage.state == "processing") & (InboundMessage.lease_until < now),
    )


def error_text(text: str) -> str:
    """An error as a row keeps it: 2,000 characters at most, a NUL written as "\\x00" (the
    error may quote the payload; PostgreSQL's text cannot hold a NUL, and failing to record
    the error would fail the message again at every retry)."""
    return text.replace("\x00", "\\x00")[:2000]


def set_outcome(runtime, inbound_id: int, state: str, error: str) -> None:
    with runtime.db.session() as session:
        session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id)
                        .values(state=state, error=error_text(error), lease_until=None))
    log.warning("inbound %s %s: %s", inbound_id, state, error)


def record_failure(runtime, inbound_id: int, exc: Exception) -> None:
    """Count the failed attempt; after MAX_PROCESSING_ATTEMPTS the message waits for an agent."""
    with runtime.db.session() as session:
        count_failure(session, inbound_id, exc)


def count_failure(session, inbound_id: int, exc: Exception) -> None:
    inbound = session.get(InboundMessage, inbound_id)
    if inbound is None:
        return
    inbound.attempts += 1
    inbound.error = error_text(f"{type(exc).__name__}: {exc}")
    inbound.state = "failed" if inbound.attempts >= MAX_PROCESSING_ATTEMPTS else "received"
    inbound.lease_until = None


def pending_inbound(runtime, limit: int = 500) -> list[int]:
    now = utcnow()
    with runtime.db.session() as session:
        return list(session.scalars(
            select(InboundMessage.id).where(processable(now)).order_by(InboundMessage.id).limit(limit)
        ))
