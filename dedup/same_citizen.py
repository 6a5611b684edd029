"""The same citizen writing again about the same problem joins their open request.

A citizen who sends the same complaint twice (a second e-mail, the form submitted again,
a call after an e-mail) is one request, not two. Compared: their open requests of the same
category created within the window, by rapidfuzz token_set_ratio on folded text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from rapidfuzz import fuzz
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.models import OPEN_STATUSES, Request
from normalizer.text import fold

WINDOW = timedelta(days=14)
SIMILAR = 80.0  # token_set_ratio, 0-100


@dataclass(frozen=True)
class DedupDecision:
    action: str  # "new" or "join"
    request_id: int | None = None
    score: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict:
        return {"action": self.action, "request_id": self.request_id, "score": round(self.score, 1), "reason": self.reason}


def same_citizen(
    session: Session, citizen_id: int | None, category: str | None, text: str, now: datetime
) -> DedupDecision:
    if citizen_id is None:
        return DedupDecision("new", reason="no known citizen")
    candidates = session.scalars(
        select(Request)
        .where(
            Request.citizen_id == citizen_id,
            Request.status.in_(OPEN_STATUSES),
            Request.category == category if category else Request.category.is_(None),
            Request.created_at >= now - WINDOW,
        )
        .order_by(Request.created_at.desc())
        .limit(20)
    ).all()
    folded = fold(text)
    best, best_score = None, 0.0
    for candidate in candidates:
        score = fuzz.token_set_ratio(folded, fold(candidate.description))
        if score > best_score:
            best, best_score = candidate, score
    if best is not None and best_score >= SIMILAR:
        return DedupDecision("join", best.id, best_score, "same citizen, same category, similar text")
    return DedupDecision("new", score=best_score, reason=f"{len(candidates)} open request(s) of theirs compared")
