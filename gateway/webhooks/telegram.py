"""Telegram webhook: ``POST /webhooks/telegram``.

Verify (the X-Telegram-Bot-Api-Secret-Token given to setWebhook), store the update (unique on
``update_id``), answer 200. Parsing is the background job's; see adapters/channels/telegram.py.
"""

from __future__ import annotations

import json
import logging

from flask import current_app, jsonify, request

from adapters.channels.telegram import check_secret, update_id
from adapters.errors import AdapterMisconfiguredError, MalformedPayloadError, SignatureError

from . import accept, bp, refuse

log = logging.getLogger(__name__)
# The two answers, written once: a webhook's answer is what Telegram waits for, 4 % of its CPU in jsonify.
_ANSWERS = {stored: json.dumps({"ok": True, "stored": stored}).encode() for stored in (True, False)}


@bp.post("/telegram")
def telegram_update():
    settings = current_app.extensions["runtime"].settings
    try:
        check_secret(settings.get("TELEGRAM_SECRET_TOKEN"), request.headers.get("X-Telegram-Bot-Api-Secret-Token"))
    except (AdapterMisconfiguredError, SignatureError) as exc:
        return refuse("telegram", exc)
    body = request.get_data(cache=False)  # 413 past MAX_CONTENT_LENGTH
    try:
        inbound_id, created = accept("telegram", update_id(body), body, "application/json")
    except MalformedPayloadError as exc:  # no update_id, or one no database column holds
        return jsonify(error=str(exc), field=exc.field), 400
    return current_app.response_class(_ANSWERS[created], status=200, mimetype="application/json")
