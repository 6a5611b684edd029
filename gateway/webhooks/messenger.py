"""Facebook Messenger webhook: ``GET`` (subscription check) and ``POST /webhooks/messenger``.

Verify (X-Hub-Signature-256 over the raw body), split the batch into one stored inbound per
event (unique on the message id), answer 200 fast. Parsing is the background job's; see
adapters/channels/messenger/ for the provider's rules.
"""

from __future__ import annotations

import hashlib
import json
import logging

from flask import current_app, jsonify, request

from adapters.channels.messenger import split_batch, verify_signature, verify_subscription
from adapters.errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    SignatureError,
    UnsupportedEventError,
)

from . import accept_all, bp, refuse

log = logging.getLogger(__name__)
# The answers to one event, stored or already stored (the usual POST), written once, as Telegram's.
_ONE_EVENT = {stored: json.dumps({"stored": stored, "duplicates": 1 - stored, "ignored": {}, "rejected": []}).encode()
              for stored in (0, 1)}


@bp.get("/messenger")
def messenger_subscription():
    settings = current_app.extensions["runtime"].settings
    args = request.args
    if verify_subscription(settings.get("MESSENGER_VERIFY_TOKEN"), args.get("hub.mode"), args.get("hub.verify_token")):
        return args.get("hub.challenge", ""), 200, {"Content-Type": "text/plain; charset=utf-8"}
    log.warning("messenger subscription check refused")
    return jsonify(error="subscription refused: wrong hub.mode or hub.verify_token"), 403


@bp.post("/messenger")
def messenger_events():
    settings = current_app.extensions["runtime"].settings
    body = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        verify_signature(settings.get("MESSENGER_APP_SECRET"), body, request.headers.get("X-Hub-Signature-256"))
    except (AdapterMisconfiguredError, SignatureError) as exc:
        return refuse("messenger", exc)
    try:
        batch = split_batch(body)
    except MalformedPayloadError as exc:
        return jsonify(error=str(exc), field=exc.field), 400
    except UnsupportedEventError as exc:
        log.info("messenger webhook: %s, ignored", exc)
        return jsonify(ignored=str(exc)), 200
    if batch.rejected and not batch.items:
        return jsonify(error="no usable event in the batch", rejected=batch.rejected), 400
    stored = sum(item.created for item in accept_all(
        "messenger", [(_key(item.provider_id), item.body) for item in batch.items], "application/json"))
    # Like the other webhooks, a batch stored as it came leaves no line but the access log's.
    plain = stored == len(batch.items) and not batch.ignored and not batch.rejected
    log.log(logging.DEBUG if plain else logging.INFO, "messenger webhook: %s stored, %s already stored, ignored %s, "
            "%s rejected", stored, len(batch.items) - stored, batch.ignored or "nothing", len(batch.rejected))
    if len(batch.items) == 1 and not batch.ignored and not batch.rejected:
        return current_app.response_class(_ONE_EVENT[stored], status=200, mimetype="application/json")
    return jsonify(stored=stored, duplicates=len(batch.items) - stored, ignored=batch.ignored,
                   rejected=batch.rejected), 200


def _key(provider_id: str) -> str:
    return provider_id if len(provider_id) <= 255 else "sha256:" + hashlib.sha256(provider_id.encode()).hexdigest()
