"""Mail that no person wrote: auto-replies, out-of-office notices, bounces, delivery reports.

None of these may open a request or be answered (an acknowledgement to a vacation notice
starts a mail loop). Signals, strongest first:

- RFC 3834 ``Auto-Submitted`` (anything but ``no``), and the de-facto ``X-Autoreply``,
  ``X-Autorespond``, ``X-Auto-Response-Suppress`` on replies, ``Precedence: bulk|junk|list|auto_reply``;
- RFC 6522 ``multipart/report`` (delivery-status = bounce, disposition-notification = read
  receipt, feedback-report = ARF complaint);
- an empty envelope sender (``Return-Path: <>``), used only by automatic mail (RFC 5321 §4.5.5);
- senders such as MAILER-DAEMON or postmaster, and subjects such as "Automatic reply:",
  "Réponse automatique", "Absent du bureau", "Undeliverable:", "Non remis".

For a bounce, the failed recipients and the Message-ID of the returned message are read
from the delivery-status part (RFC 3464) or, for plain-text bounces, from the text.
"""

from __future__ import annotations

import re
from email.message import Message

from ...base import BounceReport
from .mime import decode_bytes, header, message_ids, part_text, sender

_AUTO_SUBJECT = re.compile(
    r"^\s*(?:auto(?:matic|matische)?[\s_-]*(?:reply|response|respons|antwort)|autoreply|"
    r"réponse\s+automatique|r[ée]ponse\s+auto\b|absen(?:t|ce)\s+(?:du|de)\s+bureau|"
    r"out\s+of\s+(?:the\s+)?office|automatyczna\s+odpowied|abwesenheitsnotiz|respuesta\s+autom[aá]tica|"
    r"auto:|vacation\b|away\s+until)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"(?:undeliver(?:able|ed)|delivery\s+status\s+notification|returned\s+mail|mail\s+delivery\s+"
    r"(?:failed|failure|system)|failure\s+notice|delivery\s+(?:has\s+)?failed|non\s+remis|"
    r"échec\s+de\s+(?:la\s+)?(?:remise|distribution)|message\s+non\s+distribu|"
    r"returned\s+to\s+sender|delivery\s+failure|delivery\s+delayed)",
    re.IGNORECASE,
)
_DAEMON = re.compile(r"^(?:mailer-daemon|postmaster|mail-daemon|mailerdaemon|bounces?|noreply-dmarc)[@+]",
                     re.IGNORECASE)
_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_ADDRESS = re.compile(r"[A-Za-z0-9._%+'=-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def classify(message: Message) -> tuple[str, str] | None:
    """("auto_reply"|"bounce"|"report", reason) for automatic mail; None for a person's."""
    ctype = message.get_content_type()
    if ctype == "multipart/report":
        kind = (message.get_param("report-type") or "").lower()
        if kind == "delivery-status":
            return "bounce", "delivery status report (multipart/report)"
        return "report", f"{kind or 'unknown'} report (multipart/report)"
    name, address = sender(message)
    subject = header(message, "Subject")
    if address and _DAEMON.match(address):
        return ("bounce" if _BOUNCE_SUBJECT.search(subject) or _has_returned_message(message) else "report",
                "sent by a mailer daemon")
    if _BOUNCE_SUBJECT.search(subject) and (_null_sender(message) or _has_returned_message(message)):
        return "bounce", "delivery failure notice"
    auto = header(message, "Auto-Submitted").split(";")[0].strip().lower()
    if auto and auto != "no":
        return "auto_reply", f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if message.get(name) is not None:
            return "auto_reply", name
    precedence = header(message, "Precedence").strip().lower()
    if precedence in _PRECEDENCE:
        return "auto_reply", f"Precedence: {precedence}"
    if _AUTO_SUBJECT.search(subject):
        return "auto_reply", "automatic reply subject"
    if _null_sender(message):
        return "auto_reply", "empty envelope sender (Return-Path: <>)"
    return None


def _null_sender(message: Message) -> bool:
    return any(value.strip() == "<>" for value in (message.get_all("Return-Path") or []))


def _has_returned_message(message: Message) -> bool:
    return any(p.get_content_type() in ("message/rfc822", "text/rfc822-headers", "message/delivery-status")
               for p in message.walk())


# --- bounces -------------------------------------------------------------------------------

def bounce_report(message: Message, reason: str) -> BounceReport:
    """Who could not be reached, whether for good, and which of our messages came back."""
    recipients, permanent = _dsn_recipients(message)
    if not recipients:
        recipients = _text_recipients(message)
        permanent = not re.search(r"\bdelay(?:ed)?\b|\bretry(?:ing)?\b|will\s+(?:be\s+)?retr",
                                  _all_text(message), re.IGNORECASE)
    failed = header(message, "X-Failed-Recipients")
    recipients += [a.lower() for a in _ADDRESS.findall(failed)]
    return BounceReport(
        recipients=tuple(dict.fromkeys(recipients)),
        original_message_ids=tuple(_returned_message_ids(message)),
        permanent=permanent,
        reason=reason,
        text=_all_text(message)[:20_000],
    )


def _dsn_recipients(message: Message) -> tuple[list[str], bool]:
    failed, delayed = [], []
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            # str(): a header with raw 8-bit bytes comes back as an email.header.Header
            address = _ADDRESS.search(str(block.get("final-recipient", "") or block.get("original-recipient", "")))
            if not address:
                continue
            action = str(block.get("action", "")).lower()
            status = str(block.get("status", ""))
            if action == "failed" or status.startswith("5"):
                failed.append(address.group(0).lower())
            elif action == "delayed" or status.startswith("4"):
                delayed.append(address.group(0).lower())
    return (failed, True) if failed else (delayed, False)


def _status_blocks(part: Message) -> list[dict[str, str]]:
    """RFC 3464 per-recipient field blocks, whatever way the parser split them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # Each block as its fields, not re-generated (the generator raises on some raw bytes).
        text = "\n\n".join("\n".join(f"{name}: {value}" for name, value in p.items())
                           for p in payload if isinstance(p, Message))
    else:
        text = part_text(part)
    blocks = []
    for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        fields = {}
        for line in chunk.split("\n"):
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        blocks.append(fields)
    return blocks


def _text_recipients(message: Message) -> list[str]:
    """Plain-text bounces (qmail, Gmail's old format): addresses near "failed" words."""
    ours = {sender(message)[1]}
    text = _all_text(message)
    head = re.split(r"^-{3,}.*(?:original|returned|message)|^Received:|^Return-Path:", text,
                    maxsplit=1, flags=re.IGNORECASE | re.MULTILINE)[0]
    return [a.lower() for a in _ADDRESS.findall(head) if a.lower() not in ours]


def _returned_message_ids(message: Message) -> list[str]:
    ids = []
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner:
                ids += message_ids(str(inner[0].get("Message-ID", "")))
        elif ctype == "text/rfc822-headers":
            ids += message_ids(" ".join(re.findall(r"^Message-ID:\s*(.*)$", part_text(part),
                                                   re.IGNORECASE | re.MULTILINE)))
    if not ids:  # plain-text bounces quote the returned headers in the body
        ids = message_ids(" ".join(re.findall(r"^\s*Message-ID:\s*(\S+)", _all_text(message),
                                              re.IGNORECASE | re.MULTILINE)))
    return list(dict.fromkeys(ids))


def _all_text(message: Message) -> str:
    chunks = []
    for part in message.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if payload:
            chunks.append(decode_bytes(payload, part.get_content_charset()))
    return "\n".join(chunks)
