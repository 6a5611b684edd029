"""Provider webhooks. Each does three things: verify, store raw, answer (STYLE §3).

One module per provider, registered below; each route verifies the provider's signature
(SignatureError → 403, nothing stored), calls ``accept`` to store the payload, and answers.
Parsing and everything after it happen in the background job.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, jsonify

from adapters.errors import AdapterError, AdapterMisconfiguredError

from ..intake import Stored, insert_inbound, store_inbound, write
from . import push

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
bp.record_once(push.install)


def enqueue(job: str, item_id: int) -> None:
    """Queue a stored message's job from a webhook: pushed to Redis in a batch a moment later
    (push.py), handed to this process's threads at once without Redis."""
    push.for_app(current_app).enqueue(job, item_id)


def accept(channel: str, provider_id: str, body: bytes, content_type: str, headers: dict | None = None,
           reserve_code: bool = False, code: str | None = None) -> tuple[int, bool]:
    """Store one provider message and enqueue its processing. (inbound id, created).

    A provider's retry (same channel + provider id) is found, not stored twice, and not
    processed twice. ``code``: a tracking code already drawn for it (see store_inbound)."""
    runtime = current_app.extensions["runtime"]
    inbound_id, created = store_inbound(runtime, channel, provider_id, body, content_type, headers, reserve_code, code)
    if created:
        enqueue("process_inbound", inbound_id)
    return inbound_id, created


def accept_all(channel: str, items: list[tuple[str, bytes]], content_type: str) -> list[Stored]:
    """Store a provider's batch (provider id, body) in ONE transaction, one durable commit, then
    enqueue the new ones. Retries and repeats inside the batch are found, not stored twice."""
    runtime = current_app.extensions["runtime"]
    stored = write(runtime, lambda connection: [insert_inbound(connection, channel, provider_id, body, content_type)
                                                for provider_id, body in items], single=len(items) == 1)
    for item in stored:
        if item.created:
            enqueue("process_inbound", item.id)
    return stored


def refuse(channel: str, exc: AdapterError):
    """The answer to a payload that failed verification: 503 while the channel is not
    configured (the provider retries later), 403 for a missing or wrong signature."""
    if isinstance(exc, AdapterMisconfiguredError):
        log.error("%s webhook disabled: %s", channel, exc)
        return jsonify(error=f"the {channel} channel is not configured"), 503
    log.warning("%s webhook refused: %s", channel, exc)
    return jsonify(error="invalid signature"), 403


# Provider modules register their routes on `bp` when imported (one line each):
from . import messenger  # noqa: E402,F401,I001
from . import slack  # noqa: E402,F401  (Slack buttons and thread replies)
from . import telegram  # noqa: E402,F401,I001
from . import twilio  # noqa: E402,F401
