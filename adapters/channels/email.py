"""E-mail to citizens: acknowledgements, updates and agent replies over SMTP.

Provider: any SMTP server. Each message gets a Message-ID derived from its idempotency key
and, for follow-ups, In-Reply-To (the citizen's last e-mail) and References (the
conversation's earlier Message-IDs), so the citizen's mail client keeps one thread; the
tracking code is in the subject so a reply finds its request (RFC 5322 §3.6.4). Plain text
and an HTML alternative, in the citizen's language (Content-Language, <html lang>).
"""

from __future__ import annotations

import html
import re

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
        headers = [("To", message.to), ("Subject", message.subject or ""),
                   ("Message-ID", message.message_id or self.transport.message_id(message.idempotency_key))]
        if self.reply_to:
            headers.append(("Reply-To", self.reply_to))
        references = list(dict.fromkeys([*message.references, *filter(None, [message.in_reply_to])]))
        if message.in_reply_to:
            headers.append(("In-Reply-To", message.in_reply_to))
        if references:
            headers.append(("References", " ".join(references)))
        if message.automatic:
            headers.append(("Auto-Submitted", "auto-generated"))  # RFC 3834: auto-responders must not answer
        headers.append(("Content-Language", message.language))
        html_text = to_html(message.text, message.language)
        return DeliveryReceipt(external_id=self.transport.send(headers, message.text, html_text))


_URL = re.compile(r"https?://[^\s<>\"]+")


def to_html(text: str, language: str) -> str:
    """The plain text as simple HTML: paragraphs, line breaks and clickable links."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    body = "\n".join(f"<p>{_linked(p).replace(chr(10), '<br>' + chr(10))}</p>" for p in paragraphs)
    return (f'<!DOCTYPE html>\n<html lang="{html.escape(language)}"><head><meta charset="utf-8"></head>\n'
            f'<body style="font-family: sans-serif; line-height: 1.4">\n{body}\n</body></html>\n')


def _linked(paragraph: str) -> str:
    out, last = [], 0
    for match in _URL.finditer(paragraph):
        url = match.group(0).rstrip(".,;:)")
        out.append(html.escape(paragraph[last:match.start()]))
        out.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        last = match.start() + len(url)
    out.append(html.escape(paragraph[last:]))
    return "".join(out)
