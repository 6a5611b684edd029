"""From a channel's neutral message to the canonical request fields (SPEC: the normalizer).

Pure functions: no database here. Identity and conversation threading, which need the
database, are in identity.py and conversation.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from adapters.base import Attachment, CitizenMessage
from adapters.errors import MalformedPayloadError

from . import language as language_detection
from .codes import find_codes
from .phone import to_e164
from .text import clean

# The longest value each field's column holds (gateway/models.py; a test checks they agree).
# PostgreSQL refuses a longer one where SQLite would store it, and a refusal there fails the
# message at every retry. A citizen's longer text is cut to fit; a longer contact is no real
# address or provider id, and the message is refused as unreadable.
TEXT_LIMITS = {"name": 200, "subject": 300, "address": 300}
MAX_CONTACT = 255


@dataclass(frozen=True)
class Normalized:
    channel: str
    text: str
    language: str
    language_detected: bool
    subject: str | None
    name: str | None
    email: str | None
    phone: str | None  # E.164
    messenger_psid: str | None
    telegram_chat_id: str | None
    preferred_channel: str | None
    consent: bool
    lat: float | None
    lon: float | None
    address: str | None
    category: str | None
    reference_codes: tuple[str, ...] = ()
    in_reply_to: str | None = None
    attachments: tuple[Attachment, ...] = field(default_factory=tuple)
    external_id: str | None = None  # the channel's id for this message (e-mail Message-ID)
    command: str | None = None
    edit_of: str | None = None
    attributes: dict | None = None

    def contact_points(self) -> list[tuple[str, str]]:
        return [(kind, value) for kind, value in self._points() if value]

    def written_from(self) -> tuple[str, str] | None:
        """The chat contact point this message came from (a Messenger PSID, a Telegram chat
        id), whose last message opens the channel's window; None on other channels."""
        value = {"messenger": self.messenger_psid, "telegram": self.telegram_chat_id}.get(self.channel)
        return (self.channel, value) if value else None

    def _points(self) -> list[tuple[str, str | None]]:
        return [("email", self.email), ("phone", self.phone), ("messenger", self.messenger_psid),
                ("telegram", self.telegram_chat_id)]


def fit(text: str | None, limit: int) -> str | None:
    """``text`` within ``limit`` characters: cut, and ending with "…", when longer."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def coordinates(lat, lon) -> tuple[float | None, float | None]:
    """A point on Earth, or (None, None): a provider's payload can carry anything there
    (an object, a string, NaN, 400°), and a place that is not one is no place."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (lat, lon)):
        return None, None
    return (float(lat), float(lon)) if -90 <= lat <= 90 and -180 <= lon <= 180 else (None, None)


def plain(value) -> str | None:
    """An id or address as given, as text and without NUL characters (PostgreSQL's text
    cannot hold them, not even in a query's parameter: a broken Message-ID would fail every
    retry)."""
    return (str(value).replace("\x00", "") or None) if value else None


def text_of(value) -> str | None:
    """A provider's text field, if it is text: libraries that build objects from JSON without
    checking types (python-telegram-bot) let a list or an object through as a name or a text."""
    return value if isinstance(value, str) else None


def normalize(message: CitizenMessage, default_language: str, region: str, code_prefix: str) -> Normalized:
    text = clean(text_of(message.text) or "")
    subject = clean(text_of(message.subject)) if text_of(message.subject) else None
    detected = message.language is None
    language = message.language or language_detection.detect(
        " ".join(filter(None, [subject, text])), default_language
    )
    contact, where = message.contact, message.location
    lat, lon = coordinates(where.lat, where.lon)
    codes = find_codes(" ".join(filter(None, [subject, text, text_of(message.reference_code)])), code_prefix)
    normalized = Normalized(
        channel=message.channel,
        text=text,
        language=language,
        language_detected=detected,
        subject=fit(subject, TEXT_LIMITS["subject"]),
        name=fit(clean(text_of(contact.name)), TEXT_LIMITS["name"]) if text_of(contact.name) else None,
        email=plain(text_of(contact.email).strip().lower()) if text_of(contact.email) else None,
        phone=to_e164(text_of(contact.phone), region),
        messenger_psid=plain(contact.messenger_psid),
        telegram_chat_id=plain(contact.telegram_chat_id),
        preferred_channel=contact.preferred_channel,
        consent=contact.consent,
        lat=lat,
        lon=lon,
        address=fit(clean(text_of(where.address)), TEXT_LIMITS["address"]) if text_of(where.address) else None,
        category=plain(message.category),
        reference_codes=tuple(codes),
        in_reply_to=plain(message.in_reply_to),
        attachments=message.attachments,
        external_id=plain(message.external_id),
        command=plain(message.command),
        edit_of=plain(message.edit_of),
        attributes=message.attributes,
    )
    for kind, value in normalized._points():
        if value and len(value) > MAX_CONTACT:
            raise MalformedPayloadError(f"the sender's {kind} is longer than {MAX_CONTACT} characters",
                                        field=f"contact.{kind}")
    if normalized.external_id and len(normalized.external_id) > MAX_CONTACT:  # messages.external_id
        raise MalformedPayloadError(f"the message's id is longer than {MAX_CONTACT} characters", field="id")
    return normalized
