"""Several citizens, one problem: the new request against the open ones nearby.

Blocking index (dedup/index.py) → candidates → scoring (dedup/scoring.py) → decision. The
caller (gateway/pipeline.py) applies the decision: link as a duplicate, store suggestions
for agents, or nothing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gateway.models import OPEN_STATUSES

from .config import DedupRules
from .index import candidates
from .scoring import CrossDecision, Report, decide


def cross_citizen(session: Session, rules: DedupRules, report: Report, early=None) -> CrossDecision:
    """``early``: the search made before the write lock (dedup/early.py), caught up here."""
    decided = early.decision(session, report, rules, OPEN_STATUSES) if early is not None else None
    if decided is None:
        return decide(report, candidates(session, report, rules, OPEN_STATUSES), rules)
    return decided
