"""A department answering the routed e-mail: a status word updates the request.

The e-mail sink writes to the department's inbox with the tracking code in the subject and
the gateway as Reply-To. When the answer comes back (through the gateway's mailbox), and it
is from an address that department's e-mail sink writes to, a status word at the start of
the subject (after "Re:") or of the first line sets the status; the rest of the message is
the note (the closing note, for "résolu"). Anything else from a department is kept as an
internal note: a department's answer is never mistaken for a citizen's message.
"""

from __future__ import annotations

import re

from normalizer.text import fold

from .department import decline, find, report
from .models import Event, Request
from .status import StatusError

# Folded phrases (no accents, lower case), longest first so "en cours" wins over "en".
WORDS = {
    "resolu": "resolved", "resolue": "resolved", "resolved": "resolved", "fixed": "resolved", "regle": "resolved",
    "termine": "resolved", "done": "resolved", "complete": "resolved", "completed": "resolved",
    "en cours": "in_progress", "in progress": "in_progress", "pris en charge": "in_progress",
    "started": "in_progress", "recu": "acknowledged", "bien recu": "acknowledged", "acknowledged": "acknowledged",
    "rejete": "rejected", "rejetee": "rejected", "rejected": "rejected",
    "pas pour nous": "decline", "not ours": "decline", "not our department": "decline",
    "info requise": "needs_info", "needs info": "needs_info", "more information needed": "needs_info",
}
_PHRASES = sorted(WORDS, key=len, reverse=True)
_REPLY_PREFIX = re.compile(r"^\s*((re|tr|fw|fwd|aw)\s*:\s*)+", re.IGNORECASE)
_QUOTE_HEADER = re.compile(r"^(le .+ a écrit ?:|on .+ wrote:|-+ ?original message ?-+|-+ ?message d'origine ?-+|"
                           r"de ?: .+|from: .+|_{5,})$", re.IGNORECASE)
_CODE = re.compile(r"\[?[A-Z]{1,3}-\d{4}-\d+\]?")


def department_addresses(book, department_code: str | None) -> set[str]:
    department = book.departments.get(department_code or "")
    sinks = department.sinks if department else []
    return {str(s.settings().get("to", "")).strip().lower() for s in sinks if s.type == "email_smtp"} - {""}


def status_word(subject: str | None, body: str) -> tuple[str | None, str]:
    """(status or "decline" or None, the note). The word must open the subject or the body."""
    lines = []
    for line in (body or "").splitlines():
        if _QUOTE_HEADER.match(line.strip()):
            break  # the quoted original below is ours, not the department's words
        if line.strip() and not line.startswith(">"):
            lines.append(line)
    cleaned_subject = _CODE.sub(" ", _REPLY_PREFIX.sub("", subject or ""))
    for place, text in (("line", lines[0] if lines else ""), ("subject", cleaned_subject)):
        folded = fold(text)
        for phrase in _PHRASES:
            if folded == phrase or folded.startswith(phrase + " "):
                rest = lines[1:] if place == "line" else lines
                note = "\n".join(rest).strip()
                if place == "line":
                    first = text.strip()
                    tail = first[len(phrase):].lstrip(" :.,-—!") if fold(first[:len(phrase) + 2]).startswith(phrase) else ""
                    note = "\n".join(filter(None, [tail, note]))
                return WORDS[phrase], note
    return None, "\n".join(lines).strip()


def department_reply(session, runtime, message, codes: tuple[str, ...]) -> tuple[Request, list[int]] | None:
    """Handle ``message`` (normalized e-mail) if it is a department answering about one of
    ``codes``: (request, deliveries to send). None: not a department's reply."""
    sender = (message.email or "").lower()
    if message.channel != "email" or not sender:
        return None
    book = runtime.rules.current
    for code in codes:
        request = find(session, code)
        if request is None or sender not in department_addresses(book, request.department):
            continue
        status, note = status_word(message.subject, message.text)
        actor = f"email:{request.department}"
        if status == "decline":
            return request, decline(session, runtime, request, actor, note or None)
        if status is not None:
            try:
                return request, report(session, runtime, request, status, actor, note or None)
            except StatusError as exc:
                session.add(Event(request_id=request.id, actor=actor, type="status_refused",
                                  data={"status": status, "reason": str(exc)}))
                return request, []
        session.add(Event(request_id=request.id, actor=actor, type="note", data={"text": note[:4000]}))
        return request, []
    return None
