"""Slack sink: the request posted to the department's channel, with status buttons.

Provider docs: chat.postMessage and chat.update (https://docs.slack.dev/reference/methods/),
Block Kit buttons, interactivity (block_actions payloads to the Request URL). Uses slack-sdk's
WebClient; ``SLACK_BOT_TOKEN`` from the environment, ``SLACK_API_BASE`` (tests: a local
stand-in) as its base URL. Configuration: ``{type: slack, channel: C0123456}`` (the channel id; the bot must be a member,
scopes chat:write and channels:history).

Buttons carry ``action_id`` ``status:<status>`` (acknowledged, in_progress, resolved) or
``decline`` and ``value`` = the tracking code; gateway/webhooks/slack.py verifies the click
(Slack signature, v0 HMAC-SHA256 with ``SLACK_SIGNING_SECRET``, five-minute window).

The receipt's external id is ``<channel id>:<ts>``: what chat.update and thread replies need.
Quirks: Slack has no idempotency key: each post carries message metadata with the outbox's
key, and a retry first looks for it in the channel's recent history (conversations.history,
scope channels:history) so that a worker killed after Slack accepted the post does not post
it twice;
errors come as HTTP 200 with ``ok: false`` (``ratelimited`` and ``*_timeout`` are worth a
retry, ``channel_not_found``/``invalid_auth``… are not); 429 carries Retry-After; a body that
is not JSON is reported by slack-sdk as ``ok: false`` with an "unexpected body" error.
slack-sdk's own retry handlers are turned off: retries belong to the outbox.
"""

from __future__ import annotations

import urllib.error
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..base import DeliveryReceipt, RequestSummary
from ..errors import AdapterMisconfiguredError, PermanentDeliveryError, TransientDeliveryError

METADATA_EVENT = "gateway_request_routed"
HISTORY_LOOKBACK = 100  # messages searched for an earlier post on a retry
TRANSIENT_ERRORS = {"ratelimited", "internal_error", "fatal_error", "service_unavailable",
                    "request_timeout", "team_added_to_org"}
BUTTONS = (("status:acknowledged", "Acknowledge", "primary"), ("status:in_progress", "In progress", None),
           ("status:resolved", "Resolved", "primary"), ("decline", "Not ours", "danger"))
STATUS_WORDS = {"new": "New", "acknowledged": "Acknowledged", "routed": "Routed", "in_progress": "In progress",
                "resolved": "Resolved", "closed": "Closed", "rejected": "Rejected",
                "needs_info": "Needs information", "duplicate": "Duplicate"}


class SlackSink:
    type = "slack"

    def __init__(self, token: str | None, base_url: str | None = None, timeout: int = 10):
        self.token = token
        self.base_url = (base_url or "https://slack.com/api/").rstrip("/") + "/"
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings) -> SlackSink:
        seconds = settings.get("GATEWAY_HTTP_TIMEOUT_SECONDS")
        return cls(settings.get("SLACK_BOT_TOKEN"), settings.get("SLACK_API_BASE"), int(float(seconds or 10)))

    def client(self) -> WebClient:
        if not self.token:
            raise AdapterMisconfiguredError("SLACK_BOT_TOKEN is not set")
        return WebClient(token=self.token, base_url=self.base_url, timeout=self.timeout, retry_handlers=[])

    def check(self, target: dict[str, Any]) -> None:
        """Raises AdapterMisconfiguredError when this target cannot be delivered to."""
        if not target.get("channel"):
            raise AdapterMisconfiguredError("slack sink needs a 'channel'")
        self.client()

    def deliver(
        self, request: RequestSummary, target: dict[str, Any], idempotency_key: str
    ) -> DeliveryReceipt:
        """Posts (or, with ``update_ts``, updates; with ``notice``, replies in the thread).

        Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        self.check(target)
        channel, client = target["channel"], self.client()
        if target.get("update_ts"):
            answer = _call(client.chat_update, channel=channel, ts=target["update_ts"],
                           text=headline(request), blocks=blocks(request, target.get("actor")))
        elif target.get("notice"):
            answer = _call(client.chat_postMessage, channel=channel, text=target["notice"]["text"],
                           thread_ts=target.get("thread_ts"), reply_broadcast=bool(target.get("thread_ts")))
        else:
            earlier = _earlier_post(client, channel, idempotency_key) if int(target.get("attempt") or 1) > 1 else None
            if earlier is not None:
                return DeliveryReceipt(external_id=f"{channel}:{earlier}")
            answer = _call(client.chat_postMessage, channel=channel, text=headline(request),
                           blocks=blocks(request), unfurl_links=False,
                           metadata={"event_type": METADATA_EVENT,
                                     "event_payload": {"code": request.code, "idempotency_key": idempotency_key}})
        return DeliveryReceipt(external_id=f"{answer.get('channel') or channel}:{answer.get('ts')}")


def _earlier_post(client: WebClient, channel: str, key: str) -> str | None:
    """The ts of a message already posted under ``key`` (a worker died after Slack accepted it
    but before the gateway recorded it), found in the channel's recent history by its metadata."""
    try:
        answer = _call(client.conversations_history, channel=channel, limit=HISTORY_LOOKBACK,
                       include_all_metadata=True)
    except (PermanentDeliveryError, AdapterMisconfiguredError):
        return None  # no history scope, or a channel given by name: post (a double is better than none)
    for message in answer.get("messages") or []:
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") == METADATA_EVENT and (metadata.get("event_payload") or {}).get("idempotency_key") == key:
            return message.get("ts")
    return None


def _call(method, **kwargs):
    try:
        return method(**kwargs)
    except SlackApiError as exc:
        raise _classify(exc) from exc
    except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
        raise TransientDeliveryError(f"slack: unreachable ({type(exc).__name__})") from exc


def _classify(exc: SlackApiError) -> Exception:
    response = exc.response
    status = response.status_code
    error = response.get("error") if isinstance(response.data, dict) else None
    if status == 429 or error == "ratelimited":
        hint = (response.headers or {}).get("Retry-After") or (response.headers or {}).get("retry-after")
        return TransientDeliveryError("slack: rate limited", retry_after=float(hint) if hint else None)
    if status >= 500 or error in TRANSIENT_ERRORS:
        return TransientDeliveryError(f"slack: HTTP {status} {error or ''}".strip())
    if error and error.startswith("Received a response in a non-JSON format"):
        return TransientDeliveryError("slack: answer was not JSON")
    if error in ("invalid_auth", "not_authed", "account_inactive", "token_revoked"):
        return AdapterMisconfiguredError(f"slack: {error} (check SLACK_BOT_TOKEN)")
    return PermanentDeliveryError(f"slack: HTTP {status} {error or 'error'}")


def headline(request: RequestSummary) -> str:
    where = request.address or request.district or "—"
    return f"[{request.code}] {request.category_name} — {where} ({request.priority})"


def blocks(request: RequestSummary, actor: str | None = None) -> list[dict]:
    """The message: facts, description, photo links, and the buttons while still open."""
    facts = [f"*Code:* <{request.track_url}|{request.code}>", f"*Category:* {request.category_name}",
             f"*Priority:* {request.priority}", f"*Status:* {STATUS_WORDS.get(request.status, request.status)}",
             f"*Address:* {request.address or '—'}"]
    if request.sla_due_at:
        facts.append(f"*Due:* {request.sla_due_at:%Y-%m-%d %H:%M} UTC")
    out: list[dict] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline(request)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]},
        {"type": "section", "text": {"type": "plain_text", "text": (request.description or "—")[:2900]}},
    ]
    if request.attachments:
        links = " ".join(f"<{url}|photo {i}>" for i, url in enumerate(request.attachments, 1))
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": links}]})
    if actor:
        out.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Last change by {actor}"}]})
    if request.status not in ("resolved", "closed", "rejected", "duplicate"):
        out.append({"type": "actions", "block_id": f"request:{request.code}", "elements": [
            {"type": "button", "action_id": action, "value": request.code,
             "text": {"type": "plain_text", "text": label}, **({"style": style} if style else {})}
            for action, label, style in BUTTONS]})
    return out
