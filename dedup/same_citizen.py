"""The same citizen writing again about the same problem joins their open request.

A citizen who sends the same complaint twice (a second e-mail, the form submitted again,
a call after an e-mail, a Facebook message after a call: the citizen record holds all their
contact points) is one request, not two. Compared: their open requests of the same category
created within the window (config/dedup.yaml, same_citizen), by rapidfuzz token_set_ratio on
folded text. Two requests whose places are both known and farther apart than the category's
radius are two problems, however alike the words ("pothole in front of my house" at two
addresses).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from rapidfuzz import fuzz
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from gateway.models import OPEN_STATUSES, Request
from normalizer.text import fold

from .config import DedupRules
from .geo import address_distance_m, distance_m, usable_point


@dataclass(frozen=True)
class DedupDecision:
    action: str  # "new" or "join"
    request_id: int | None = None
    score: float = 0.0
    reason: str = ""

    def as_dict(self) -> dict:
        return {"action": self.action, "request_id": self.request_id, "score": round(self.score, 1), "reason": self.reason}


def same_citizen(
    session: Session, citizen_id: int | None, category: str | None, text: str, now: datetime,
    rules: DedupRules | None = None, lat: float | None = None, lon: float | None = None,
    address: str | None = None, first_time: bool = False,
) -> DedupDecision:
    """``first_time``: the citizen was created for this very message, so no request of theirs
    exists yet: nothing to read (the decision is the one an empty read gives)."""
    if citizen_id is None:
        return DedupDecision("new", reason="no known citizen")
    if first_time:
        return _new_for([])
    rules = rules or DedupRules()
    window = timedelta(days=rules.same_citizen.window_days)
    values = {"citizen_id": citizen_id, "since": now - window}
    if category:
        values["category"] = category
    session.flush()  # what Session.execute does first; the statement itself is Core, run on the connection
    candidates = session.connection().execute(_candidates_statement(bool(category)), values).all()
    folded = fold(text)
    radius = rules.reach(category).radius_m
    best, best_score, elsewhere = None, 0.0, 0
    for candidate in candidates:
        if _apart(candidate, lat, lon, address, rules) > radius:
            elsewhere += 1
            continue
        score = fuzz.token_set_ratio(folded, fold(candidate.description))
        if score > best_score:
            best, best_score = candidate, score
    if best is not None and best_score >= rules.same_citizen.similarity:
        return DedupDecision("join", best.id, best_score, "same citizen, same category, similar text")
    return _new_for(candidates, best_score, elsewhere)


def _new_for(candidates: list, best_score: float = 0.0, elsewhere: int = 0) -> DedupDecision:
    reason = f"{len(candidates)} open request(s) of theirs compared"
    if elsewhere:
        reason += f", {elsewhere} elsewhere"
    return DedupDecision("new", score=best_score, reason=reason)


@lru_cache(maxsize=2)
def _candidates_statement(with_category: bool):
    """Their open requests of the category, most recent first: built once per shape, as
    composing a statement costs more CPU than running it. Only the columns compared (rows,
    not ORM objects: loading objects cost more than the comparison)."""
    return (
        select(Request.id, Request.description, Request.lat, Request.lon, Request.address)
        .where(
            Request.citizen_id == bindparam("citizen_id"),
            Request.status.in_(OPEN_STATUSES),
            Request.category == bindparam("category") if with_category else Request.category.is_(None),
            Request.created_at >= bindparam("since", type_=Request.created_at.type),
        )
        .order_by(Request.created_at.desc())
        .limit(20)
    )


def _apart(request, lat, lon, address, rules: DedupRules) -> float:
    """Metres between the two places when both are known; 0 when they cannot be compared."""
    if usable_point(lat, lon, rules.bounds) is None and usable_point(request.lat, request.lon, rules.bounds) is None:
        return distance_m(lat, lon, request.lat, request.lon)
    along = address_distance_m(address, request.address)
    return along if along is not None else 0.0
