"""The interfaces every channel and sink implements, and the neutral types they exchange.

Adapters know the outside world (a provider's payload, an SMTP server, an HTTP API) and
nothing of Flask, SQL or queues: the gateway hands them plain values and gets plain values
back. Errors come from :mod:`adapters.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class RawInbound:
    """A payload as stored by the gateway before any parsing."""

    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class Contact:
    """How the citizen can be reached, as they gave it (normalized later)."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    messenger_psid: str | None = None
    telegram_chat_id: str | None = None
    preferred_channel: str | None = None
    consent: bool = True


@dataclass(frozen=True)
class Location:
    lat: float | None = None
    lon: float | None = None
    address: str | None = None


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes | None = None
    url: str | None = None  # to be fetched by a background job
    refused: str | None = None  # why the file is not kept (too large, executable…); data is None


@dataclass(frozen=True)
class CitizenMessage:
    """What one inbound payload says, in neutral terms: the channel's parse result."""

    channel: str
    text: str
    contact: Contact = field(default_factory=Contact)
    location: Location = field(default_factory=Location)
    subject: str | None = None
    language: str | None = None
    category: str | None = None
    attachments: tuple[Attachment, ...] = ()
    attributes: dict | None = None  # answers to the service's questions (Open311 attributes)
    # Threading hints: a tracking code the citizen quoted, or the provider's reply reference.
    reference_code: str | None = None
    in_reply_to: str | None = None
    # The provider's id for this message (Messenger mid, Telegram chat:message), kept on the
    # conversation so replies and edits find it.
    external_id: str | None = None
    # Chat channels: a command ("start", "status", "language:fr") instead of a request, or
    # the external id of the message this one edits.
    command: str | None = None
    edit_of: str | None = None
    # Channel outcomes decided before parsing (see twilio/): a STOP/START word (True/False),
    # the tracking code already given in the channel's own answer, a request to be created as
    # needs_info (a voicemail without a transcript), a text that fills in the referenced
    # request's missing description (the transcript arriving after the call).
    opt_out: bool | None = None
    acknowledged: bool = False
    needs_info: bool = False
    fills_description: bool = False
    external_id: str | None = None  # the provider's id for this message (e-mail: its Message-ID)


@dataclass(frozen=True)
class BounceReport:
    """A delivery failure notice about mail we sent (RFC 3464), in neutral terms."""

    recipients: tuple[str, ...]  # the addresses that could not be reached
    original_message_ids: tuple[str, ...]  # Message-IDs of the returned message(s)
    permanent: bool  # False for "delayed, still trying" notices
    reason: str
    text: str = ""  # the notice's text, to find a tracking code when no Message-ID came back


@dataclass(frozen=True)
class OutboundMessage:
    """A message to a citizen (acknowledgement, update, reply) on one channel."""

    to: str
    text: str
    language: str
    subject: str | None = None
    idempotency_key: str = ""
    message_id: str | None = None  # e.g. the e-mail Message-ID we assign
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()  # earlier Message-IDs of the thread, oldest first
    automatic: bool = True  # an acknowledgement or notice, not a person's reply
    # The outbox's attempt at sending it (1 = the first) and when the outbox queued it: a
    # channel whose provider has no idempotency key (Twilio) looks, on a later attempt, for
    # what an earlier one may have sent since then without the gateway recording it.
    attempt: int = 1
    queued_at: datetime | None = None


@dataclass(frozen=True)
class RequestSummary:
    """What a department's tool receives about a routed request."""

    code: str
    category: str | None
    category_name: str
    department: str
    priority: str
    status: str
    channel: str
    language: str
    description: str
    address: str | None
    district: str | None
    lat: float | None
    lon: float | None
    sla_due_at: datetime | None
    created_at: datetime
    track_url: str
    rule: str | None
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryReceipt:
    """What a successful send returns: the provider's id for what it accepted."""

    external_id: str | None = None


@runtime_checkable
class InboundChannel(Protocol):
    """A channel whose stored payloads become citizen messages."""

    name: str

    def parse(self, raw: RawInbound) -> CitizenMessage:
        """Raises MalformedPayloadError or UnsupportedEventError."""


@runtime_checkable
class OutboundChannel(Protocol):
    """A channel that can write to citizens."""

    name: str

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Send one message. Raises TransientDeliveryError or PermanentDeliveryError."""


@runtime_checkable
class Sink(Protocol):
    """A department's existing tool that routed requests are delivered into."""

    type: str

    def check(self, target: dict[str, Any]) -> None:
        """Raises AdapterMisconfiguredError when ``target`` cannot be delivered to (a missing
        setting or secret), without sending anything: `gateway sinks` shows it to administrators."""

    def deliver(
        self, request: RequestSummary, target: dict[str, Any], idempotency_key: str
    ) -> DeliveryReceipt:
        """Deliver one request to ``target`` (the department's sink settings from config/).

        Raises TransientDeliveryError, PermanentDeliveryError or AdapterMisconfiguredError.
        """
