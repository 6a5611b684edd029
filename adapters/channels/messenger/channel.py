"""Messenger's channel: a stored event parsed into a citizen message, messages sent through
the Send API, attachments fetched (see the package's docstring for the provider's rules).

Resends: the Send API has no idempotency key, so a send whose answer never reached us (a
worker killed, a connection dropped after Meta took it) would be sent again by the outbox's
next attempt. On an attempt after the first, the adapter first reads the page's conversation
with the citizen (Conversations API, https://developers.facebook.com/docs/messenger-platform/conversations:
``GET /{version}/me/conversations?platform=messenger&user_id=<PSID>&fields=messages.limit(20)
{id,created_time,from,message}``, ``me`` being the page of the token) and takes as the earlier
send a message from the page (``from.id`` not the PSID: that conversation holds only the two)
with exactly the text we would send (after the cut at 2,000; quick replies are not part of
``message``), created since the outbox queued it, less a minute for the clocks
(``created_time``: ISO 8601, ``+0000``, to the second). Its id is the receipt. Only a
conversation's 20 newest messages can be read in detail (``LOOKBACK``). Reading takes more than
sending: a page token from a person with the MESSAGING (or MODERATE) task, and the app's
``pages_messaging``, ``pages_manage_metadata`` and ``pages_read_engagement`` (Advanced Access
for citizens without a role on the app). A failed lookup (unreachable, an error such as a
missing permission, an unreadable answer) sends anyway: a double is better than none. Left
over: more than 20 newer messages in the conversation, or the same text typed by an agent in
the page's inbox meanwhile, defeat the lookup (a double; a message taken for ours).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

import httpx

from ...base import (
    Attachment,
    CitizenMessage,
    Contact,
    DeliveryReceipt,
    Location,
    OutboundMessage,
    RawInbound,
)
from ...download import read_limited
from ...errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnsupportedEventError,
)
from .webhook import event_kind, sender_of, split_batch

log = logging.getLogger(__name__)

DEFAULT_GRAPH_API_BASE = "https://graph.facebook.com"
DEFAULT_GRAPH_API_VERSION = "v21.0"
TRACK_PAYLOADS = {"TRACK_REQUEST", "SUIVRE_DEMANDE", "STATUS"}
START_PAYLOADS = {"GET_STARTED", "START"}
MAX_TEXT = 2000  # Send API limit for a text message
LOOKBACK = 20  # the newest messages of a conversation searched for an earlier send, on a retry
CLOCK_SKEW = timedelta(minutes=1)  # Meta's clock may be behind ours: created_time vs queued_at
ATTACHMENT_TYPES = {"image": ("image", "image/jpeg"), "audio": ("audio", "audio/mpeg"),
                    "video": ("video", "video/mp4"), "file": ("file", "application/octet-stream")}
QUICK_REPLY_TITLE = {"fr": "Suivre ma demande", "en": "Track my request"}


class MessengerChannel:
    """Parses stored Messenger events; sends with the Graph API Send API."""

    name = "messenger"

    def __init__(self, page_token: str | None = None, base: str = DEFAULT_GRAPH_API_BASE,
                 version: str = DEFAULT_GRAPH_API_VERSION, timeout: float = 10.0):
        self.page_token = page_token
        self.base = base.rstrip("/")
        self.version = version.strip("/")
        self.timeout = timeout
        self._client: httpx.Client | None = None

    @classmethod
    def from_settings(cls, settings) -> MessengerChannel:
        return cls(settings.get("MESSENGER_PAGE_TOKEN"),
                   str(settings.get("GRAPH_API_BASE") or DEFAULT_GRAPH_API_BASE),
                   str(settings.get("GRAPH_API_VERSION") or DEFAULT_GRAPH_API_VERSION))

    @classmethod
    def for_sending(cls, settings) -> MessengerChannel:
        """Raises AdapterMisconfiguredError without a page token: nothing could be sent."""
        if not settings.get("MESSENGER_PAGE_TOKEN"):
            raise AdapterMisconfiguredError("MESSENGER_PAGE_TOKEN is not set")
        return cls.from_settings(settings)

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError or UnsupportedEventError."""
        batch = split_batch(raw.body)
        if len(batch.items) != 1:
            reason = batch.rejected[0]["field"] if batch.rejected else "no storable event"
            raise MalformedPayloadError(f"expected one Messenger event: {reason}", field="entry")
        event = json.loads(batch.items[0].body)["entry"][0]["messaging"][0]
        psid = sender_of(event)
        contact = Contact(messenger_psid=psid, preferred_channel="messenger")
        kind = event_kind(event)
        if kind in ("postback", "message_edit") and not isinstance(event[kind], dict):
            raise MalformedPayloadError(f"{kind} must be an object", field=kind)
        if kind == "postback":
            return _postback(event["postback"], contact)
        if kind == "message_edit":
            edit = event["message_edit"]
            return CitizenMessage(channel="messenger", text=str(edit.get("text") or ""), contact=contact,
                                  external_id=f"{edit['mid']}:edit:{edit.get('num_edit', 0)}",
                                  edit_of=str(edit["mid"]))
        return _message(event["message"], contact)

    # --- sending ---

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """POST /{version}/me/messages, unless an earlier attempt's message is found in the
        page's conversation with the citizen (module docstring): then its id is the receipt.
        Raises AdapterMisconfiguredError, TransientDeliveryError (timeouts, 429, 5xx, rate
        limits) or PermanentDeliveryError."""
        if not self.page_token:
            raise AdapterMisconfiguredError("MESSENGER_PAGE_TOKEN is not set")
        text = _fit(message.text)
        earlier = self.earlier_send(message, text) if message.attempt > 1 else None
        if earlier is not None:
            log.info("message %s found in the page's conversation from an earlier attempt: not sent again", earlier)
            return DeliveryReceipt(external_id=earlier)
        payload = {
            "recipient": {"id": message.to},
            "messaging_type": "RESPONSE",
            "message": {"text": text, "quick_replies": [{
                "content_type": "text", "payload": "TRACK_REQUEST",
                "title": QUICK_REPLY_TITLE.get(message.language, QUICK_REPLY_TITLE["fr"])}]},
        }
        try:
            response = self._http().post(f"{self.base}/{self.version}/me/messages",
                                         params={"access_token": self.page_token}, json=payload)
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"Graph API unreachable: {type(exc).__name__}") from exc
        return _receipt(response)

    def earlier_send(self, message: OutboundMessage, text: str) -> str | None:
        """The id of ``text`` as an earlier attempt got Meta to accept it since
        ``message.queued_at``, or None (not found, no ``queued_at`` to bound the search, or the
        lookup failed: the caller sends)."""
        if message.queued_at is None:
            return None  # unbounded, an identical text sent months ago would pass for this one
        since = message.queued_at.replace(tzinfo=message.queued_at.tzinfo or UTC) - CLOCK_SKEW
        try:
            recent = self._conversation_messages(message.to)
        except LookupError as exc:
            log.warning("Messenger conversation lookup failed (%s): sending without it", exc)
            return None
        return next((str(held["id"]) for held in recent if _is_earlier_send(held, message.to, text, since)), None)

    def _conversation_messages(self, psid: str) -> list[dict]:
        """The newest messages of the page's conversation with ``psid`` (none before the first).
        Raises LookupError, saying why without the Graph API's message (it may quote the PSID)."""
        try:
            response = self._http().get(f"{self.base}/{self.version}/me/conversations", params={
                "platform": "messenger", "user_id": psid, "access_token": self.page_token,
                "fields": f"messages.limit({LOOKBACK}){{id,created_time,from,message}}"})
        except httpx.TransportError as exc:
            raise LookupError(f"Graph API unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LookupError(f"Graph API {response.status_code}, code {_graph_error(response).get('code')}")
        try:
            return [held for conversation in response.json()["data"]
                    for held in (conversation.get("messages") or {"data": []})["data"] if isinstance(held, dict)]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LookupError(f"unreadable answer: {type(exc).__name__}") from exc

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """An attachment from its CDN URL: (content, content type). Raises
        TransientDeliveryError (network, 429, 5xx) or PermanentDeliveryError (4xx, too large)."""
        try:
            with self._http().stream("GET", url, follow_redirects=True) as response:
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientDeliveryError(f"attachment fetch answered {response.status_code}")
                if response.status_code != 200:
                    raise PermanentDeliveryError(f"attachment fetch answered {response.status_code}")
                return read_limited(response, max_bytes)
        except httpx.TransportError as exc:
            raise TransientDeliveryError(f"attachment unreachable: {type(exc).__name__}") from exc

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout)
        return self._client


def _message(message: dict, contact: Contact) -> CitizenMessage:
    text = message.get("text") if isinstance(message.get("text"), str) else ""
    attachments, location, links = [], Location(), []
    items = message.get("attachments") if isinstance(message.get("attachments"), list) else []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        payload = item.get("payload") if isinstance(item.get("payload"), dict) else {}
        kind = item.get("type") if isinstance(item.get("type"), str) else None
        if kind == "location" and isinstance(payload.get("coordinates"), dict):
            where = payload["coordinates"]
            location = Location(lat=_number(where.get("lat")), lon=_number(where.get("long")))
        elif kind == "fallback" and payload.get("url"):
            links.append(str(payload["url"]))
        elif kind in ATTACHMENT_TYPES and payload.get("url"):
            stem, content_type = ATTACHMENT_TYPES[kind]
            attachments.append(Attachment(filename=f"{stem}-{i + 1}", content_type=content_type,
                                          url=str(payload["url"])))
    if not text and not attachments and location.lat is None and not links:
        raise UnsupportedEventError("a Messenger message with nothing the gateway can use (sticker, reaction…)")
    quick = message.get("quick_reply") if isinstance(message.get("quick_reply"), dict) else {}
    reply_to = message.get("reply_to") if isinstance(message.get("reply_to"), dict) else {}
    command = _command(quick.get("payload"))
    words = "\n".join(filter(None, [text, *links]))
    return CitizenMessage(
        channel="messenger", text=words, contact=contact,
        location=location, attachments=tuple(attachments), external_id=str(message["mid"]),
        in_reply_to=str(reply_to["mid"]) if reply_to.get("mid") else None, command=command,
        # A photo alone waits for words (needs_info); the first words describe and route it.
        needs_info=not words.strip(), fills_description=bool(words.strip()),
    )


def _postback(postback: dict, contact: Contact) -> CitizenMessage:
    command = _command(postback.get("payload"))
    if command is None:
        raise UnsupportedEventError("postback with a payload the gateway does not know")
    return CitizenMessage(channel="messenger", text=str(postback.get("title") or ""), contact=contact,
                          command=command, external_id=str(postback["mid"]) if postback.get("mid") else None)


def _command(payload) -> str | None:
    if not isinstance(payload, str):
        return None
    if payload.upper() in TRACK_PAYLOADS:
        return "status"
    if payload.upper() in START_PAYLOADS:
        return "start"
    return None


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _fit(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _is_earlier_send(held: dict, psid: str, text: str, since: datetime) -> bool:
    sender = held.get("from") if isinstance(held.get("from"), dict) else {}
    from_page = str(sender.get("id") or "") not in ("", psid)  # the conversation: the citizen and the page
    created = _created(held.get("created_time"))
    return bool(held.get("id")) and from_page and held.get("message") == text and created is not None \
        and created >= since


def _created(value) -> datetime | None:
    """``created_time`` (``2026-11-22T14:19:57+0000``) as an aware datetime, None if unreadable."""
    try:
        created = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return created if created.tzinfo else created.replace(tzinfo=UTC)


def _receipt(response: httpx.Response) -> DeliveryReceipt:
    if response.status_code == 200:
        try:
            return DeliveryReceipt(external_id=str(response.json().get("message_id") or "") or None)
        except (ValueError, AttributeError) as exc:
            raise TransientDeliveryError("Graph API answered 200 with a body that is not JSON") from exc
    error = _graph_error(response)
    code, subcode = error.get("code"), error.get("error_subcode")
    detail = f"Graph API {response.status_code} (code {code}, subcode {subcode}): {str(error.get('message', ''))[:200]}"
    if response.status_code == 429 or response.status_code >= 500 or code in (1, 2, 4, 17, 32, 613) \
            or error.get("is_transient"):
        retry_after = response.headers.get("retry-after")
        raise TransientDeliveryError(detail, float(retry_after) if retry_after and retry_after.isdigit() else None)
    if code == 190:
        raise AdapterMisconfiguredError(detail)  # the page token is invalid or expired
    raise PermanentDeliveryError(detail)  # e.g. 10/2018278: outside the 24-hour window; 551: unavailable


def _graph_error(response: httpx.Response) -> dict:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}
