"""Closing resolved requests, and what a citizen's message after the fact does.

A resolved request is closed ``GATEWAY_CLOSE_AFTER_HOURS`` after its resolution (the
scheduler does it). A citizen writing again about a resolved request, or about a closed one
within ``GATEWAY_REOPEN_DAYS`` of its closure, reopens it (in progress again, the department
told); later than that, the message starts a new request linked to the old one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from normalizer.text import fold

from .department import notify_department, refresh_slack
from .models import LOCK_REQUEST, Request, utcnow
from .status import change_status


def too_old_to_reopen(runtime, request: Request, now: datetime | None = None) -> bool:
    if request.status != "closed" or request.closed_at is None:
        return False
    window = timedelta(days=float(runtime.settings.get("GATEWAY_REOPEN_DAYS", 14)))
    return (now or utcnow()) - request.closed_at > window


def reopen_if_finished(session, runtime, request: Request, text: str) -> list[int]:
    """The citizen wrote about ``request``: reopen it if it was resolved or closed (a bare
    "merci !" answering the closing message is kept in the conversation, and reopens nothing)."""
    if request.status not in ("resolved", "closed") or is_thanks(text):
        return []
    ids = change_status(session, runtime, request, "in_progress", "citizen", note=None,
                        external={"reopened": True})
    ids += notify_department(session, runtime, request, "reopened", {"message": text[:1000]})
    return ids + refresh_slack(session, request, "citizen")


def close_resolved(runtime, now: datetime | None = None) -> list[int]:
    """Close the requests resolved long enough ago, in short transactions
    (``Database.in_short_transactions``); returns deliveries to send."""
    now = now or utcnow()
    delay = timedelta(hours=float(runtime.settings.get("GATEWAY_CLOSE_AFTER_HOURS", 72)))
    with runtime.db.session() as session:
        due = list(session.scalars(select(Request.id).where(
            Request.status == "resolved", Request.resolved_at <= now - delay)
            .order_by(Request.resolved_at, Request.id).limit(500)))

    def close(session, request_id: int) -> list[int]:
        request = session.get(Request, request_id, with_for_update=LOCK_REQUEST)
        if request is None or request.status != "resolved" or request.resolved_at > now - delay:
            return []  # reopened, or resolved again, meanwhile
        return change_status(session, runtime, request, "closed", "system:scheduler",
                             note=f"closed {delay.total_seconds() / 3600:g} h after resolution")

    return runtime.db.in_short_transactions(due, close)


THANKS = {"merci", "merci beaucoup", "merci bien", "merci a vous", "merci pour tout", "super merci", "parfait merci",
          "parfait", "genial", "thanks", "thank you", "thank you very much", "thanks a lot", "great thanks", "ok",
          "ok merci", "ok thanks", "d accord merci", "bravo", "excellent"}


def is_thanks(text: str) -> bool:
    """A short thank-you (the first line, folded), not a new report."""
    first = fold((text or "").strip().split("\n", 1)[0])
    return first in THANKS or (len(first.split()) <= 6 and first.split()[:1] in (["merci"], ["thanks"]))
