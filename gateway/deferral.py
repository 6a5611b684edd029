"""A message that must wait for another: an SMS follow-up whose first message, which reserved
the code the citizen was given, is not processed yet (another worker holds it, or it waits
for a retry). It is put back for a moment, its attempt not counted, so that it joins that
request instead of opening a second one (gateway/webhooks/twilio.py answers it "added to").
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import bindparam, select, update

from .models import InboundMessage, utcnow

log = logging.getLogger(__name__)
# Taken again after this lease (by the sweeper), up to MAX_WAIT after it arrived; then it is
# done alone.
WAIT = timedelta(seconds=2)
MAX_WAIT = timedelta(minutes=10)


class NotYet(Exception):
    """The message continues a request the citizen was already given the code of, whose first
    message is stored but not processed yet: it is processed after that one."""


def wait_for_reserved(session, inbound, codes) -> None:
    """Raises NotYet when a code the message continues was reserved by another message that
    is still waiting to be processed (read through the index of waiting messages)."""
    if utcnow() - inbound.received_at > MAX_WAIT:
        return
    first = session.execute(_RESERVED_BY_WAITING, {"codes": list(codes), "me": inbound.id}).first()
    if first is not None:
        raise NotYet(f"continues {first.reserved_code}, whose first message (inbound {first.id}) is not processed yet")


_RESERVED_BY_WAITING = (
    select(InboundMessage.id, InboundMessage.reserved_code)
    .where(InboundMessage.state.in_(("received", "processing")), InboundMessage.request_id.is_(None),
           InboundMessage.reserved_code.in_(bindparam("codes", expanding=True)), InboundMessage.id != bindparam("me"))
    .limit(1))


def defer(session, inbound_id: int, attempts: int, exc: NotYet) -> None:
    """Back to waiting, taken again once WAIT is over (a lease the sweeper sees run out);
    the attempt is not counted: nothing failed."""
    session.execute(update(InboundMessage).where(InboundMessage.id == inbound_id).values(
        state="processing", lease_until=utcnow() + WAIT, attempts=attempts, error=str(exc)[:2000]))
    log.info("inbound %s deferred: %s", inbound_id, exc)
