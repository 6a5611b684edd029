"""The durable outbox: deliveries to departments' tools and messages to citizens.

States: pending → sending → delivered, or back to pending with backoff (transient error),
or dead (permanent error, misconfiguration, or too many attempts): dead letters wait for an
administrator. A delivery is claimed atomically with a lease before it is sent, so two
workers never send it at once; a worker that dies mid-send leaves a lease that expires, and
the sweeper hands the delivery out again under the same idempotency key.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from adapters.base import OutboundMessage, RequestSummary
from adapters.errors import (
    AdapterMisconfiguredError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

from .models import Delivery, Event, Message, Request, utcnow

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(hours=1)


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


def claim(session, delivery_id: int, now: datetime, lease: timedelta) -> bool:
    """Take the delivery for sending if it is due and nobody holds it."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            or_(
                (Delivery.state == "pending") & (Delivery.next_attempt_at <= now),
                (Delivery.state == "sending") & (Delivery.lease_until < now),
            ),
        )
        .values(state="sending", lease_until=now + lease, attempts=Delivery.attempts + 1)
    )
    return result.rowcount == 1


def run_delivery(runtime, delivery_id: int) -> str | None:
    """Claim, send, record. Returns the new state, or None if it was not ours to send."""
    settings = runtime.settings
    now = utcnow()
    with runtime.db.session() as session:
        if not claim(session, delivery_id, now, timedelta(seconds=settings["GATEWAY_LEASE_SECONDS"])):
            return None
        delivery = session.get(Delivery, delivery_id)
        work = _prepare(runtime, session, delivery)
    try:
        receipt = work()
    except TransientDeliveryError as exc:
        return _retry_later(runtime, delivery_id, str(exc), exc.retry_after)
    except (PermanentDeliveryError, AdapterMisconfiguredError) as exc:
        return _dead(runtime, delivery_id, f"{type(exc).__name__}: {exc}")
    return _delivered(runtime, delivery_id, receipt.external_id)


def _prepare(runtime, session, delivery: Delivery):
    """A callable that performs the send outside any database transaction."""
    try:
        if delivery.purpose == "sink":
            sink = runtime.sink(delivery.target)
            summary = summarize(runtime, delivery.request)
            # "attempt" lets a sink without idempotency keys look for an earlier, unrecorded success.
            target = {**delivery.settings, "attempt": delivery.attempts}
            return lambda: sink.deliver(summary, target, delivery.idempotency_key)
        channel = runtime.outbound(delivery.target)
        if channel is None:
            raise AdapterMisconfiguredError(f"no outbound adapter for {delivery.target}")
        message = OutboundMessage(idempotency_key=delivery.idempotency_key, **delivery.settings["message"])
        return lambda: channel.send(message)
    except AdapterMisconfiguredError as exc:
        return _raising(exc)


def _raising(exc: Exception):
    def fail():
        raise exc

    return fail


def summarize(runtime, request: Request) -> RequestSummary:
    book = runtime.rules.current
    language = "fr"
    department = book.departments.get(request.department or "")
    if department is not None:
        language = department.language
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
        attachments=tuple(runtime.public_url(f"/attachments/{a.id}") for a in request.attachments),
    )


def _finish(runtime, delivery_id: int, **values) -> Delivery | None:
    """Write the outcome only if we still hold the claim (the lease was not taken over)."""
    with runtime.db.session() as session:
        result = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "sending").values(**values)
        )
        if result.rowcount != 1:
            return None
        delivery = session.get(Delivery, delivery_id)
        _record(session, delivery, values)
        return delivery


def _record(session, delivery: Delivery, values: dict) -> None:
    if delivery.request_id is None:  # a chat reply about no request: the outbox row is the record
        return
    state = values["state"]
    data = {"delivery": delivery.id, "target": delivery.target, "attempt": delivery.attempts, "state": state}
    if values.get("last_error"):
        data["error"] = values["last_error"]
    kind = {"delivered": "delivered", "pending": "delivery_retry", "dead": "delivery_dead"}[state]
    actor = f"{'sink' if delivery.purpose == 'sink' else 'channel'}:{delivery.target}"
    session.add(Event(request_id=delivery.request_id, actor=actor, type=kind, data=data))
    if state == "delivered" and delivery.purpose == "notify":
        message = delivery.settings["message"]
        session.add(Message(
            request_id=delivery.request_id, direction="out", channel=delivery.target,
            body=message["text"], subject=message.get("subject"),
            external_id=values.get("external_id"), delivery_id=delivery.id,
            author=delivery.settings.get("author"),
        ))
        request = session.get(Request, delivery.request_id)
        if delivery.settings.get("kind") == "acknowledgement" and request.acknowledged_at is None:
            request.acknowledged_at = values["delivered_at"]


def _delivered(runtime, delivery_id: int, external_id: str | None) -> str:
    _finish(runtime, delivery_id, state="delivered", delivered_at=utcnow(), external_id=external_id,
            lease_until=None, last_error=None)
    runtime.record_health(_health_name(runtime, delivery_id), ok=True)
    log.info("delivery %s delivered", delivery_id)
    return "delivered"


def _retry_later(runtime, delivery_id: int, error: str, retry_after: float | None) -> str:
    with runtime.db.session() as session:
        attempts = session.get(Delivery, delivery_id).attempts
    if attempts >= runtime.settings["GATEWAY_MAX_ATTEMPTS"]:
        return _dead(runtime, delivery_id, f"gave up after {attempts} attempts: {error}")
    delay = backoff(runtime.settings["GATEWAY_BACKOFF_SECONDS"], attempts, retry_after)
    _finish(runtime, delivery_id, state="pending", next_attempt_at=utcnow() + delay, last_error=error,
            lease_until=None)
    runtime.record_health(_health_name(runtime, delivery_id), ok=False, detail=error)
    log.warning("delivery %s failed (attempt %s), retry in %ss: %s", delivery_id, attempts, int(delay.total_seconds()), error)
    return "pending"


def _dead(runtime, delivery_id: int, error: str) -> str:
    _finish(runtime, delivery_id, state="dead", last_error=error, lease_until=None)
    runtime.record_health(_health_name(runtime, delivery_id), ok=False, detail=error)
    log.error("delivery %s is dead: %s", delivery_id, error)
    return "dead"


def _health_name(runtime, delivery_id: int) -> str:
    with runtime.db.session() as session:
        delivery = session.get(Delivery, delivery_id)
        return f"{delivery.purpose}:{delivery.target}"


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
            select(Delivery.id)
            .where(or_(
                (Delivery.state == "pending") & (Delivery.next_attempt_at <= now),
                (Delivery.state == "sending") & (Delivery.lease_until < now),
            ))
            .order_by(Delivery.next_attempt_at)
            .limit(limit)
        ))


def retry_dead(runtime, delivery_id: int, actor: str) -> bool:
    """An administrator sends a dead delivery again: back to pending, attempts reset."""
    with runtime.db.session() as session:
        result = session.execute(
            update(Delivery).where(Delivery.id == delivery_id, Delivery.state == "dead")
            .values(state="pending", attempts=0, next_attempt_at=utcnow(), last_error=None)
        )
        if result.rowcount != 1:
            return False
        delivery = session.get(Delivery, delivery_id)
        session.add(Event(request_id=delivery.request_id, actor=actor, type="delivery_requeued",
                          data={"delivery": delivery_id, "target": delivery.target}))
    runtime.jobs.enqueue("deliver", delivery_id)
    return True
