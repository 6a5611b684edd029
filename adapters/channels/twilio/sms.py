"""SMS and MMS through Twilio: inbound webhook payloads, replies in TwiML, outbound messages.

Docs: https://www.twilio.com/docs/messaging/guides/webhook-request (inbound fields),
https://www.twilio.com/docs/messaging/twiml (TwiML replies),
https://www.twilio.com/docs/messaging/api/message-resource (sending, StatusCallback),
https://help.twilio.com/articles/223134027 (standard opt-out keywords).

Signature: see common.py (X-Twilio-Signature, HMAC-SHA1 of the public URL + sorted fields).
Quirks: the payload is form-encoded, never JSON; ``MessageSid`` is the id to deduplicate on
(Twilio retries the same sid); ``SmsSid``/``SmsMessageSid`` are older aliases; MMS media are
``MediaUrl0..N-1`` / ``MediaContentType0..N-1`` with ``NumMedia``, fetched with the account's
credentials; a Messaging Service adds ``MessagingServiceSid`` and may use any of its numbers
as ``To``. Twilio itself blocks sending to numbers that texted an opt-out word (error 21610);
the gateway records the opt-out too so that it stops trying. Bodies are at most 1,600
characters (longer sends are refused with error 21617), so outbound texts are cut there.

Resends: the Messages API has no idempotency key, so a send whose answer never reached us (a
worker killed, a connection dropped after Twilio accepted it) would be sent again by the
outbox's next attempt. On an attempt after the first, the adapter first reads the newest
messages to the citizen's number from our sender (``GET …/Messages.json?To=…&From=…``,
https://www.twilio.com/docs/messaging/api/message-resource#read-multiple-message-resources;
with a Messaging Service there is no filter on it: ``To`` only, and the service's sid is
compared) and takes one as the earlier send when it went out through the API
(``direction`` ``outbound-api``, not a TwiML reply), has exactly the body we would send (after
the cut at 1,600), was created since the outbox queued the message (less a minute for the
two clocks), and has not ``failed``, ``undelivered`` or been ``canceled`` (those reached nobody:
the message is sent again). Its sid is then the receipt. The ``DateSent`` filters are not used:
they are whole GMT days and ``date_sent`` is empty while a message is queued; the list is
sorted by it (newest first), so a whole page of ``LOOKBACK`` messages is read and their
``date_created`` compared (RFC 2822, always ``+0000``: the library drops the offset). A lookup
that fails (unreachable, 5xx, an unreadable page) sends anyway: a double is better than none.
Left over: a Messaging Service that rewrites bodies (Smart Encoding, opt-out text appended)
defeats the exact comparison, and so do more than ``LOOKBACK`` newer messages to that number.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from datetime import UTC, datetime, timedelta

from ...base import (
    Attachment,
    CitizenMessage,
    Contact,
    DeliveryReceipt,
    OutboundMessage,
    RawInbound,
)
from ...errors import (
    AdapterMisconfiguredError,
    MalformedPayloadError,
    PermanentDeliveryError,
    TransientDeliveryError,
    UnsupportedEventError,
)
from .common import TwilioAccount, first, form_fields, required

log = logging.getLogger(__name__)
MAX_BODY = 1600
LOOKBACK = 20  # the newest messages to a number searched for an earlier send, on a retry
CLOCK_SKEW = timedelta(minutes=1)  # Twilio's clock may be behind ours: date_created vs queued_at
NOT_SENT = {"failed", "undelivered", "canceled"}  # statuses of a message that reached nobody
MAX_MEDIA = 10  # Twilio's own limit per MMS
OPT_OUT_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET", "ARRÊT", "OPTOUT"}
OPT_IN_WORDS = {"START", "YES", "UNSTOP", "DEBUT", "DÉBUT"}
_STATUS = re.compile(r"^\s*(status|statut|état|etat)\b[\s:#-]*(.*)$", re.IGNORECASE | re.DOTALL)
# Set by the gateway's webhook on the stored headers: what it answered in TwiML.
REFERENCE_HEADER = "X-Gateway-Reference"  # the request this message was added to
ANSWERED_HEADER = "X-Gateway-Answered"  # "acknowledged" when the TwiML carried a new code


def command(text: str) -> tuple[str, str]:
    """('opt_out' | 'opt_in' | 'status' | 'message', rest of the text)."""
    word = text.strip().upper().rstrip(".!")
    if word in OPT_OUT_WORDS:
        return "opt_out", ""
    if word in OPT_IN_WORDS:
        return "opt_in", ""
    status = _STATUS.match(text)
    if status:
        return "status", status.group(2).strip()
    return "message", text


def has_words(text: str) -> bool:
    """False for empty, whitespace-only and emoji- or punctuation-only messages."""
    return any(ch.isalnum() for ch in text)


class TwilioSmsChannel:
    """Parses inbound SMS/MMS webhooks, sends SMS, fetches MMS media."""

    name = "sms"

    def __init__(self, account: TwilioAccount | None):
        self.account = account
        self._client = None

    @classmethod
    def from_settings(cls, settings) -> TwilioSmsChannel:
        """For sending: raises AdapterMisconfiguredError when Twilio is not configured."""
        return cls(TwilioAccount.from_settings(settings))

    @classmethod
    def for_inbound(cls, settings) -> TwilioSmsChannel:
        """Parsing needs no credentials; fetching media does (checked when fetching)."""
        try:
            return cls(TwilioAccount.from_settings(settings))
        except AdapterMisconfiguredError:
            return cls(None)

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError (missing From/MessageSid/Body) or UnsupportedEventError
        (opt-in/out words and status queries, which the webhook answered itself)."""
        fields = form_fields(raw.body, raw.content_type)
        sid = required(fields, "MessageSid")
        sender = required(fields, "From")
        body = first(fields, "Body")
        if body is None:
            raise MalformedPayloadError("Body is missing", field="Body")
        kind, _rest = command(body)
        media = _media(fields, sid)
        opt_out = {"opt_out": True, "opt_in": False}.get(kind)
        if kind == "status":
            raise UnsupportedEventError("status query: answered in the TwiML reply")
        if opt_out is None and not has_words(body) and not media and REFERENCE_HEADER not in raw.headers:
            raise UnsupportedEventError("empty message: nothing to report")
        return CitizenMessage(
            channel="sms",
            text=body if opt_out is None else "",
            contact=Contact(phone=sender, preferred_channel="sms"),
            attachments=media,
            reference_code=raw.headers.get(REFERENCE_HEADER),
            opt_out=opt_out,
            acknowledged=raw.headers.get(ANSWERED_HEADER) == "acknowledged",
        )

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Sends, unless an earlier attempt's message is found at Twilio (module docstring):
        then its sid is the receipt. Raises TransientDeliveryError (network, 429, 5xx) or
        PermanentDeliveryError."""
        from requests.exceptions import RequestException
        from twilio.base.exceptions import TwilioRestException

        if self.account is None:
            raise AdapterMisconfiguredError("Twilio is not configured")
        text = message.text if len(message.text) <= MAX_BODY else message.text[: MAX_BODY - 1] + "…"
        earlier = self.earlier_send(message, text) if message.attempt > 1 else None
        if earlier is not None:
            log.info("message %s found at Twilio from an earlier attempt: not sent again", earlier)
            return DeliveryReceipt(external_id=earlier)
        sender = ({"messaging_service_sid": self.account.messaging_service_sid}
                  if self.account.messaging_service_sid else {"from_": self.account.from_number})
        try:
            sent = self._rest().messages.create(
                to=message.to, body=text, status_callback=self.status_callback_url(), **sender)
        except TwilioRestException as exc:
            raise _delivery_error(exc) from exc
        except RequestException as exc:
            raise TransientDeliveryError(f"Twilio unreachable: {type(exc).__name__}") from exc
        return DeliveryReceipt(external_id=sent.sid)

    def earlier_send(self, message: OutboundMessage, text: str) -> str | None:
        """The sid of ``text`` as an earlier attempt got Twilio to accept it since
        ``message.queued_at``, or None (not found, no ``queued_at`` to bound the search, or
        the lookup failed: the caller sends)."""
        from requests.exceptions import RequestException
        from twilio.base.exceptions import TwilioException

        if message.queued_at is None:
            return None  # unbounded, an identical text sent months ago would pass for this one
        since = message.queued_at.replace(tzinfo=message.queued_at.tzinfo or UTC) - CLOCK_SKEW
        sender = {} if self.account.messaging_service_sid else {"from_": self.account.from_number}
        try:
            recent = self._rest().messages.list(to=message.to, limit=LOOKBACK, page_size=LOOKBACK, **sender)
        except (TwilioException, RequestException, ValueError, KeyError) as exc:
            log.warning("Twilio message lookup failed (%s): sending without it", type(exc).__name__)
            return None
        return next((sent.sid for sent in recent if self._is_earlier_send(sent, message.to, text, since)), None)

    def _is_earlier_send(self, sent, to: str, text: str, since: datetime) -> bool:
        service = self.account.messaging_service_sid
        ours = sent.messaging_service_sid == service if service else sent.from_ == self.account.from_number
        return (ours and sent.direction == "outbound-api" and sent.to == to and sent.body == text
                and sent.status not in NOT_SENT and sent.date_created is not None and sent.date_created >= since)

    def fetch(self, url: str, max_bytes: int) -> tuple[bytes, str]:
        """One MMS media file. Raises as TwilioAccount.fetch, or AdapterMisconfiguredError."""
        if self.account is None:
            raise AdapterMisconfiguredError("Twilio is not configured: media cannot be fetched")
        return self.account.fetch(url, max_bytes)

    def status_callback_url(self) -> str:
        return f"{self.account.public_url}/webhooks/twilio/sms/status"

    def _rest(self):
        if self._client is None:
            self._client = self.account.rest_client()
        return self._client


def _media(fields: dict[str, list[str]], sid: str) -> tuple[Attachment, ...]:
    try:
        count = int(first(fields, "NumMedia") or 0)
    except ValueError as exc:
        raise MalformedPayloadError("NumMedia is not a number", field="NumMedia") from exc
    found = []
    for i in range(min(max(count, 0), MAX_MEDIA)):
        url = first(fields, f"MediaUrl{i}")
        if not url:
            raise MalformedPayloadError(f"MediaUrl{i} is missing", field=f"MediaUrl{i}")
        kind = first(fields, f"MediaContentType{i}") or "application/octet-stream"
        extension = mimetypes.guess_extension(kind) or ""
        found.append(Attachment(filename=f"{sid}-{i}{extension}", content_type=kind, url=url))
    return tuple(found)


def _delivery_error(exc) -> Exception:
    # 20429 / HTTP 429: too many requests; 5xx: Twilio's side. Everything else will not improve.
    if exc.status == 429 or exc.status >= 500 or exc.code == 20429:
        return TransientDeliveryError(f"Twilio {exc.status} (code {exc.code})")
    return PermanentDeliveryError(f"Twilio refused the message: {exc.status} (code {exc.code})")


_TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'
_TWIML_MESSAGE = '<?xml version="1.0" encoding="UTF-8"?><Response><Message>{}</Message></Response>'


def sms_reply(text: str | None) -> str:
    """The TwiML document that answers an inbound SMS (empty: no reply is sent).

    Byte for byte what twilio's MessagingResponse().message(text) prints (a test compares
    them), without building an ElementTree on every webhook."""
    if not text:
        return _TWIML_EMPTY
    escaped = text[:MAX_BODY].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _TWIML_MESSAGE.format(escaped)
