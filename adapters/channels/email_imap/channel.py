"""The parser for mail read from the city's mailboxes: one stored RFC 822 message in,
one citizen message out (or an error saying why not)."""

from __future__ import annotations

import re

from ...base import CitizenMessage, Contact, RawInbound
from ...errors import MalformedPayloadError, UnsupportedEventError
from . import loops, mime
from .files import FilePolicy
from .quotes import strip_reply

_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|tr|fw|fwd|rép|ré|aw|wg|sv)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)


class EmailImapChannel:
    """Parses citizen e-mail. Raises UnsupportedEventError for automatic mail (with a bounce
    report for delivery failures) and MalformedPayloadError for mail that cannot be read."""

    name = "email"

    def __init__(self, policy: FilePolicy | None = None, own_addresses: tuple[str, ...] = ()):
        self.policy = policy or FilePolicy()
        self.own_addresses = {a.strip().lower() for a in own_addresses if a}

    @classmethod
    def from_settings(cls, settings) -> EmailImapChannel:
        own = (settings.get("SMTP_FROM"), settings.get("GATEWAY_REPLY_TO"), settings.get("IMAP_USER"))
        return cls(FilePolicy.from_settings(settings), tuple(a for a in own if a and "@" in a))

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError or UnsupportedEventError."""
        # The poller notes the size on the server: an oversized message may be stored headers only.
        strip_files = self.policy.oversized(int((raw.headers or {}).get("size") or len(raw.body)))
        message = mime.parse_bytes(raw.body)
        if not message.keys():
            raise MalformedPayloadError("no mail headers: not an RFC 822 message", field="headers")
        self._refuse_automatic(message)
        name, address = mime.sender(message)
        if not address:
            raise MalformedPayloadError("no usable sender address in From", field="From")
        if address in self.own_addresses:
            raise UnsupportedEventError("mail from the gateway's own address (loop)")
        subject = mime.header(message, "Subject")
        text, _ = mime.body_text(message)
        text = strip_reply(text)
        attachments = tuple(self.policy.review(f, strip_files) for f in mime.files(message))
        if not text.strip() and not subject.strip() and not attachments:
            raise MalformedPayloadError("the message has no text, no subject and no file", field="body")
        return CitizenMessage(
            channel="email",
            text=text or _REPLY_PREFIX.sub("", subject),
            subject=subject or None,
            contact=Contact(name=name, email=address, preferred_channel="email"),
            attachments=attachments,
            in_reply_to=_replied_to(message),
            external_id=_own_id(message),
            language=_language(message),
        )

    def _refuse_automatic(self, message) -> None:
        verdict = loops.classify(message)
        if verdict is None:
            return
        kind, reason = verdict
        bounce = loops.bounce_report(message, reason) if kind == "bounce" else None
        raise UnsupportedEventError(f"{kind.replace('_', ' ')}: {reason}", bounce=bounce)


def _replied_to(message) -> str | None:
    """The message this one answers: In-Reply-To, else the last of References."""
    for name in ("In-Reply-To", "References"):
        ids = mime.message_ids(str(message.get(name, "")))
        if ids:
            return ids[0] if name == "In-Reply-To" else ids[-1]
    return None


def _own_id(message) -> str | None:
    ids = mime.message_ids(str(message.get("Message-ID", "")))
    return ids[0][:255] if ids else None


def _language(message) -> str | None:
    declared = mime.header(message, "Content-Language").split(",")[0].strip().lower()[:2]
    return declared if declared in ("fr", "en") else None
