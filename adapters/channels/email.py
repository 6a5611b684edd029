"""E-mail to citizens: acknowledgements, updates and agent replies over SMTP.

Provider: any SMTP server. Each message gets a Message-ID derived from its idempotency key
and, for follow-ups, In-Reply-To/References pointing at the conversation's first message,
so the citizen's mail client keeps one thread; the tracking code is in the subject so a
reply finds its request (RFC 5322 §3.6.4).
"""

from __future__ import annotations

from email.message import EmailMessage

from ..base import DeliveryReceipt, OutboundMessage
from ..errors import PermanentDeliveryError
from ..smtp import SmtpTransport


class EmailChannel:
    name = "email"

    def __init__(self, transport: SmtpTransport, reply_to: str | None = None):
        self.transport = transport
        self.reply_to = reply_to

    @classmethod
    def from_settings(cls, settings) -> EmailChannel:
        return cls(SmtpTransport.from_settings(settings), settings.get("GATEWAY_REPLY_TO"))

    def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        if "@" not in message.to:
            raise PermanentDeliveryError("not an e-mail address")
        email = EmailMessage()
        email["To"] = message.to
        email["Subject"] = message.subject or ""
        email["Message-ID"] = message.message_id or self.transport.message_id(message.idempotency_key)
        if self.reply_to:
            email["Reply-To"] = self.reply_to
        if message.in_reply_to:
            email["In-Reply-To"] = message.in_reply_to
            email["References"] = message.in_reply_to
        if message.automatic:
            email["Auto-Submitted"] = "auto-generated"  # RFC 3834: auto-responders must not answer
        email.set_content(message.text)
        email["Content-Language"] = message.language  # after set_content, which resets Content-*
        return DeliveryReceipt(external_id=self.transport.send(email))
