"""E-mail threading for messages to citizens (RFC 5322 §3.6.4).

Each e-mail to a citizen answers the citizen's last e-mail on the request (In-Reply-To) and
lists the conversation's earlier Message-IDs (References), so their mail client shows one
thread; the tracking code is always in the subject so a reply finds its request even when a
client drops those headers.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, select

from .models import Message, Request

MAX_REFERENCES = 10


def thread_fields(session, request: Request, subject: str | None, rows: list[tuple] | None = None) -> dict:
    """in_reply_to, references and a subject carrying the tracking code. ``rows``: the
    request's e-mail messages (direction, external_id) in order, when the caller knows them
    (a request created in this transaction has only the message that created it)."""
    if rows is None:
        rows = session.execute(_messages_statement(), {"request_id": request.id}).all()
    ids = list(dict.fromkeys(external_id for _, external_id in rows))
    citizen = [external_id for direction, external_id in rows if direction == "in"]
    parent = citizen[-1] if citizen else (ids[-1] if ids else None)
    references = ids if len(ids) <= MAX_REFERENCES else ids[:1] + ids[-(MAX_REFERENCES - 1):]
    return {"in_reply_to": parent, "references": references, "subject": with_code(subject, request.code)}


@lru_cache(maxsize=1)
def _messages_statement():
    """Built once: composing a statement costs more CPU than running it."""
    return (select(Message.direction, Message.external_id)
            .where(Message.request_id == bindparam("request_id"), Message.channel == "email",
                   Message.external_id.is_not(None))
            .order_by(Message.id))


def with_code(subject: str | None, code: str) -> str:
    if subject and code in subject:
        return subject
    return f"[{code}] {subject}" if subject else f"[{code}]"
