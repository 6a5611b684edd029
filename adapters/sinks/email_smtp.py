"""E-mail sink: one message per routed request to the department's existing inbox.

Provider: any SMTP server (RFC 5321). The subject carries the tracking code, so the
department's reply comes back to the gateway (Reply-To) and finds its request. The
Message-ID is derived from the delivery's idempotency key: a resend after an unknown
outcome is recognizably the same message. Quirks: SMTP has no idempotency of its own,
so the outbox only resends when the previous attempt is known not to have been accepted.
"""

from __future__ import annotations

from typing import Any

from ..base import DeliveryReceipt, RequestSummary
from ..errors import AdapterMisconfiguredError
from ..smtp import SmtpTransport

LABELS = {
    "fr": {
        "subject": "[{code}] {category} — {where} ({priority})",
        "intro": "Nouvelle demande citoyenne acheminée à votre service.",
        "code": "Numéro de suivi",
        "category": "Catégorie",
        "priority": "Priorité",
        "sla": "Échéance",
        "channel": "Reçue par",
        "address": "Adresse",
        "district": "District",
        "position": "Coordonnées",
        "description": "Description",
        "rule": "Règle d'acheminement",
        "track": "Suivi public",
        "reply": "Répondez à ce courriel en gardant le numéro dans l'objet pour mettre la demande à jour.",
        "nowhere": "sans adresse",
        "priorities": {"urgent": "URGENT", "routine": "courante", "deferrable": "reportable"},
    },
    "en": {
        "subject": "[{code}] {category} — {where} ({priority})",
        "intro": "A new citizen request has been routed to your department.",
        "code": "Tracking code",
        "category": "Category",
        "priority": "Priority",
        "sla": "Due",
        "channel": "Received by",
        "address": "Address",
        "district": "District",
        "position": "Coordinates",
        "description": "Description",
        "rule": "Routing rule",
        "track": "Public tracking",
        "reply": "Reply to this e-mail, keeping the code in the subject, to update the request.",
        "nowhere": "no address",
        "priorities": {"urgent": "URGENT", "routine": "routine", "deferrable": "deferrable"},
    },
}


class EmailSmtpSink:
    type = "email_smtp"

    def __init__(self, transport: SmtpTransport, reply_to: str | None = None):
        self.transport = transport
        self.reply_to = reply_to or transport.sender

    @classmethod
    def from_settings(cls, settings) -> EmailSmtpSink:
        return cls(SmtpTransport.from_settings(settings), settings.get("GATEWAY_REPLY_TO"))

    def check(self, target: dict[str, Any]) -> None:
        """Raises AdapterMisconfiguredError when this target cannot be delivered to."""
        if not target.get("to"):
            raise AdapterMisconfiguredError("email_smtp sink needs a 'to' address")
        if not self.transport.host or not self.transport.sender:
            raise AdapterMisconfiguredError("SMTP_HOST and SMTP_FROM must be set")

    def deliver(
        self, request: RequestSummary, target: dict[str, Any], idempotency_key: str
    ) -> DeliveryReceipt:
        """Raises AdapterMisconfiguredError, TransientDeliveryError, PermanentDeliveryError."""
        to = target.get("to")
        if not to:
            raise AdapterMisconfiguredError("email_smtp sink needs a 'to' address")
        headers, text = self.compose(request, to, target.get("language", "fr"), idempotency_key)
        notice = target.get("notice")
        if notice:  # a follow-up about a request already sent (SLA warning), not a new one
            headers = [(name, f"{notice['text'].splitlines()[0]} — {value}" if name == "Subject" else value)
                       for name, value in headers]
            text = notice["text"] + "\n\n" + text
        return DeliveryReceipt(external_id=self.transport.send(headers, text))

    def compose(
        self, request: RequestSummary, to: str, language: str, idempotency_key: str
    ) -> tuple[list[tuple[str, str]], str]:
        """The message's headers (From is the transport's) and its plain-text body."""
        words = LABELS.get(language, LABELS["fr"])
        priority = words["priorities"].get(request.priority, request.priority)
        where = request.address or request.district or words["nowhere"]
        headers = [("To", to)]
        if self.reply_to:
            headers.append(("Reply-To", self.reply_to))
        headers.append(("Subject", words["subject"].format(
            code=request.code, category=request.category_name, where=where, priority=priority)))
        headers.append(("Message-ID", self.transport.message_id(idempotency_key)))
        headers.append(("X-Gateway-Request", request.code))
        if request.priority == "urgent":
            headers.append(("Importance", "high"))
        return headers, _body(request, words, priority)


def _body(request: RequestSummary, words: dict, priority: str) -> str:
    rows = [
        (words["code"], request.code),
        (words["category"], request.category_name),
        (words["priority"], priority),
        (words["sla"], request.sla_due_at.strftime("%Y-%m-%d %H:%M UTC") if request.sla_due_at else None),
        (words["channel"], request.channel),
        (words["address"], request.address),
        (words["district"], request.district),
        (words["position"], f"{request.lat:.6f}, {request.lon:.6f}" if request.lat is not None and request.lon is not None else None),
        (words["rule"], request.rule),
        (words["track"], request.track_url),
    ]
    lines = [words["intro"], ""]
    lines += [f"{label} : {value}" for label, value in rows if value]
    lines += ["", f"{words['description']} :", request.description or "—", "", words["reply"]]
    lines += [f"  {url}" for url in request.attachments]
    return "\n".join(lines) + "\n"
