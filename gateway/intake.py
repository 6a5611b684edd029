"""Step 1 of the flow: store what arrived, raw and durably, before anyone is answered.

Unique on (channel, provider id): a provider's retry, or a client resending with the same
Idempotency-Key, finds the stored message instead of creating a second one.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from adapters.channels.web_form import validate
from adapters.errors import MalformedPayloadError
from normalizer.codes import new_code

from . import pipeline
from .models import InboundMessage, Request, utcnow

log = logging.getLogger(__name__)


def store_inbound(runtime, channel: str, provider_id: str, body: bytes, content_type: str,
                  headers: dict | None = None, reserve_code: bool = False, code: str | None = None) -> tuple[int, bool]:
    """(inbound id, created). Committed when this returns: the message is safe.

    ``reserve_code`` draws a tracking code for the request to come; a caller that must answer
    with it draws it first (``new_code``) and passes it as ``code``, saving a re-read."""
    book = runtime.rules.current
    received = utcnow()
    if reserve_code and code is None:
        code = new_code(book.city.code_prefix, received.year)
    try:
        with runtime.db.session() as session:
            row = InboundMessage(channel=channel, provider_id=provider_id, body=body, content_type=content_type,
                                 headers=headers or {}, received_at=received, reserved_code=code)
            session.add(row)
            session.flush()
            return row.id, True
    except IntegrityError:
        with runtime.db.session() as session:
            existing = session.scalar(select(InboundMessage.id).where(
                InboundMessage.channel == channel, InboundMessage.provider_id == provider_id))
        if existing is None:
            raise
        log.info("inbound %s/%s already stored (id %s): provider retry ignored", channel, provider_id[:12], existing)
        return existing, False


@dataclass
class Submitted:
    code: str
    request_id: int | None
    created: bool


def submit(runtime, document: dict, idempotency_key: str | None = None) -> Submitted:
    """The gateway's own intake (API, /report, counter): validate, store, process now.

    Raises MalformedPayloadError naming the field at fault; nothing is stored then.
    """
    body = json.dumps(document, ensure_ascii=False).encode()
    submission = validate(body)
    if submission.category is not None and submission.category not in runtime.rules.current.categories:
        raise MalformedPayloadError(f"category: unknown category '{submission.category}'", field="category")
    provider_id = f"key:{idempotency_key}" if idempotency_key else f"uuid:{uuid.uuid4()}"
    inbound_id, created = store_inbound(runtime, "web_form", provider_id, body, "application/json",
                                        reserve_code=True)
    if created:
        try:
            for delivery_id in pipeline.process_inbound(runtime, inbound_id):
                runtime.jobs.enqueue("deliver", delivery_id)
        except Exception:
            # Stored, so not lost: the sweeper processes it later; the citizen still gets the code.
            log.exception("inbound %s stored but not processed yet", inbound_id)
    return _outcome(runtime, inbound_id, created)


def _outcome(runtime, inbound_id: int, created: bool) -> Submitted:
    with runtime.db.session() as session:
        inbound = session.get(InboundMessage, inbound_id)
        if inbound.request_id is not None:
            code = session.scalar(select(Request.code).where(Request.id == inbound.request_id))
            return Submitted(code, inbound.request_id, created)
        return Submitted(inbound.reserved_code, None, created)
