"""Slack's way back: button clicks (interactivity) and thread replies (Events API).

Provider docs: https://docs.slack.dev/interactivity/handling-user-interaction (block_actions,
``payload=<url-encoded JSON>``, answer within 3 seconds), https://docs.slack.dev/apis/events-api
(url_verification challenge, event_callback, retries with X-Slack-Retry-Num) and
https://docs.slack.dev/authentication/verifying-requests-from-slack (``X-Slack-Signature:
v0=hex(HMAC-SHA256(SLACK_SIGNING_SECRET, "v0:<X-Slack-Request-Timestamp>:<raw body>"))``,
timestamps older than five minutes refused), checked with slack-sdk's SignatureVerifier.

A click changes the request in the database only (a few milliseconds) and queues the
chat.update through the outbox: nothing calls Slack inside the request. A wrong or stale
signature is a 403 and changes nothing; an unknown code is a 404; a transition that is not
allowed is a 409 (Slack shows the error on the button).
"""

from __future__ import annotations

import json
import logging
from functools import wraps

from flask import current_app, jsonify, request
from slack_sdk.signature import SignatureVerifier

from .. import department
from ..models import Delivery, Event
from ..status import StatusError
from . import bp

log = logging.getLogger(__name__)


def slack_signed(view):
    """Runs ``view(runtime)`` only for a request Slack signed; otherwise 503 or 403."""

    @wraps(view)
    def wrapper():
        runtime = current_app.extensions["runtime"]
        refused = _refusal(runtime)
        return refused if refused is not None else view(runtime)

    return wrapper


def _refusal(runtime):
    """None when the request is Slack's, else the error response."""
    secret = runtime.settings.get("SLACK_SIGNING_SECRET")
    if not secret:
        runtime.record_health("inbound:slack", ok=False, detail="AdapterMisconfiguredError: SLACK_SIGNING_SECRET is not set")
        return jsonify(error="Slack is not configured on this gateway"), 503
    body = request.get_data()
    try:
        body.decode("utf-8")  # Slack sends UTF-8; the SDK's verifier raises on anything else
    except UnicodeDecodeError:
        log.warning("slack request refused: the body is not UTF-8")
        return jsonify(error="invalid Slack signature"), 403
    if not SignatureVerifier(str(secret)).is_valid_request(body, dict(request.headers)):
        log.warning("slack request refused: bad or stale signature")
        return jsonify(error="invalid Slack signature"), 403
    return None


@bp.post("/slack/interactions")
@slack_signed
def slack_interactions(runtime):
    try:
        payload = json.loads(request.form.get("payload") or "")
        action = payload["actions"][0] if payload.get("type") == "block_actions" else None
        user = payload["user"]
    except (ValueError, KeyError, IndexError, TypeError):
        return jsonify(error="payload: a block_actions JSON document is expected", field="payload"), 400
    if action is None or not str(action.get("action_id", "")).startswith(("status:", "decline")):
        return "", 200  # another kind of interaction: nothing for us
    actor = f"slack:{user.get('username') or user.get('name') or user.get('id')}"
    with runtime.db.session() as session:
        found = department.find(session, str(action.get("value") or ""))
        if found is None:
            return jsonify(error=f"no request {action.get('value')!r}"), 404
        try:
            if action["action_id"] == "decline":
                ids = department.decline(session, runtime, found, actor)
            else:
                ids = department.report(session, runtime, found, action["action_id"].split(":", 1)[1], actor,
                                        external={"slack_user": user.get("id")})
        except StatusError as exc:
            session.rollback()
            return jsonify(error=str(exc)), 409
        code = found.code
    for delivery_id in ids:
        runtime.jobs.enqueue("deliver", delivery_id)
    log.info("slack click on %s by %s: %s", code, user.get("id"), action["action_id"])
    return "", 200


@bp.post("/slack/events")
@slack_signed
def slack_events(runtime):
    """Thread replies under a request's Slack message become internal notes."""
    document = request.get_json(silent=True)
    if not isinstance(document, dict):
        return jsonify(error="a JSON body is expected", field="body"), 400
    if document.get("type") == "url_verification":
        return jsonify(challenge=document.get("challenge"))
    event = document.get("event") or {}
    if not isinstance(event, dict):
        return jsonify(error="event: an object is expected", field="event"), 400
    if (document.get("type") != "event_callback" or event.get("type") != "message" or event.get("subtype")
            or event.get("bot_id") or not event.get("thread_ts") or event.get("thread_ts") == event.get("ts")):
        return "", 200  # not a person's thread reply
    with runtime.db.session() as session:
        posted = session.query(Delivery).filter(
            Delivery.target == "slack", Delivery.external_id == f"{event.get('channel')}:{event['thread_ts']}").first()
        if posted is None:
            return "", 200  # a thread that is not about a request
        event_id = document.get("event_id") or event.get("ts")
        request_row = posted.request
        if any(e.type == "note" and e.data.get("slack_event") == event_id for e in request_row.events):
            return "", 200  # Slack's retry of an event already recorded
        session.add(Event(request_id=request_row.id, actor=f"slack:{event.get('user')}", type="note",
                          data={"text": str(event.get("text") or "")[:4000], "slack_event": event_id}))
    return "", 200
