"""Is this new report the same problem as an open one? Pure functions, no database.

``decide(new, candidates, rules)`` scores every candidate (place, text, time: see
config/dedup.yaml) and returns a CrossDecision: ``link`` to the best candidate at or above
the auto-link threshold, ``suggest`` the best ones between the two thresholds, otherwise
``new``. Every decision carries the scores and the reasons behind it, which are recorded
as an event. The same function serves production (dedup/cross_citizen.py) and the
measurements on real data (tests/dedup/replay.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .config import DedupRules
from .geo import address_distance_m, distance_m, parse_address, usable_point
from .text import prepare, similarity

SAME_STREET_PLACE = 0.3  # same street, numbers unknown: possible, never enough to link


@dataclass(frozen=True)
class Report:
    """What dedup knows of a request (new or open)."""

    created_at: datetime
    text: str = ""
    category: str | None = None
    lat: float | None = None
    lon: float | None = None
    address: str | None = None
    language: str | None = None
    priority: str = "routine"
    id: int | None = None
    code: str | None = None
    words: str = field(default="", compare=False)

    def __post_init__(self):
        if not self.words:
            object.__setattr__(self, "words", prepare(self.text))


@dataclass(frozen=True)
class Score:
    candidate_id: int | None
    code: str | None
    total: float
    place: float
    text: float | None
    time: float
    distance_m: float | None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return {
            "code": self.code, "score": round(self.total, 1), "place": round(self.place, 3),
            "text": None if self.text is None else round(self.text, 3), "time": round(self.time, 3),
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "notes": list(self.notes),
        }

    @property
    def may_link(self) -> bool:
        return self.text is not None and "languages differ" not in self.notes


@dataclass(frozen=True)
class CrossDecision:
    action: str  # "new", "link" or "suggest"
    master: Score | None = None
    suggestions: tuple[Score, ...] = ()
    flagged: bool = False  # urgent: linked, but an agent must check
    reasons: tuple[str, ...] = ()
    compared: int = 0

    def as_dict(self) -> dict:
        return {
            "action": self.action,
            "master": self.master.as_dict() if self.master else None,
            "suggestions": [s.as_dict() for s in self.suggestions],
            "flagged": self.flagged,
            "reasons": list(self.reasons),
            "compared": self.compared,
        }


def location_problem(report: Report, rules: DedupRules) -> str | None:
    """Why the report's coordinates cannot be used (None: they can)."""
    return usable_point(report.lat, report.lon, rules.bounds)


def score(new: Report, old: Report, rules: DedupRules, comparable=None) -> Score | None:
    """The score of ``old`` as the master of ``new``; None when it cannot be the same problem
    (unrelated category, too far, too old, no comparable place). Radius and window are the
    wider of the two categories' (a parking complaint about an abandoned car lasts as long
    as the abandoned car). ``comparable``: ``rules.comparable(new.category)``, when the
    caller scores many candidates (computed once); ``Scorer`` does more of that."""
    return Scorer(new, rules, comparable)(old)


class Scorer:
    """``score(new, old, rules)`` for one new report and many candidates: what depends on the
    new report alone (the categories it is compared with, its reach and window, whether its
    point is usable, its street) is worked out once, and the wider reach per candidate
    category once; each candidate's score is the one ``score`` gives."""

    def __init__(self, new: Report, rules: DedupRules, comparable=None):
        self.new, self.rules = new, rules
        self.comparable = comparable if comparable is not None else rules.comparable_set(new.category)
        self.reach = rules.reach(new.category).radius_m
        self.window = rules.window(new.category)
        self.point = location_problem(new, rules) is None
        self.street = parse_address(new.address)
        self.wider: dict = {}  # a candidate's category → (radius, window in seconds)

    def __call__(self, old: Report) -> Score | None:
        if old.category not in self.comparable:
            return None
        wider = self.wider.get(old.category)
        if wider is None:
            wider = self.wider[old.category] = (max(self.reach, self.rules.reach(old.category).radius_m),
                                                max(self.window, self.rules.window(old.category)).total_seconds())
        radius, window = wider
        new = self.new
        gap = abs((new.created_at - old.created_at).total_seconds())
        if gap > window:
            return None
        place, distance, notes = self._place(old, radius)
        if place is None:
            return None
        text = similarity(new.words, old.words)
        if text is None:
            notes.append("no text to compare")
        elif new.language and old.language and new.language != old.language:
            notes.append("languages differ")
        time = 1 - gap / window
        weights = self.rules.weights
        if text is None:  # a photo alone: judged on place and time, and never linked (may_link)
            total = 100 * (weights.place * place + weights.time * time) / (weights.place + weights.time)
        else:
            total = 100 * (weights.place * place + weights.text * text + weights.time * time)
        return Score(old.id, old.code, total, place, text, time, distance, tuple(notes))

    def _place(self, old: Report, radius: float):
        """(place 0..1 or None when too far or not comparable, distance in metres, notes).

        Coordinates and addresses are both compared when both exist, and the nearer wins: a
        phone's GPS fix can be 60 m off when the two addresses typed are the same."""
        new, notes, found = self.new, [], []
        if self.point and location_problem(old, self.rules) is None:
            found.append((distance_m(new.lat, new.lon, old.lat, old.lon), None))
        along_street = address_distance_m(new.address, old.address)
        if along_street is not None:
            found.append((along_street, "compared by address"))
        if found:
            distance, note = min(found, key=lambda f: f[0])
            if note:
                notes.append(note)
            if distance > radius:
                return None, distance, notes
            return 1 - distance / radius, distance, notes
        other = parse_address(old.address)
        if self.street is not None and other is not None and self.street[1] == other[1]:
            notes.append("same street, no house number")
            return SAME_STREET_PLACE, None, notes
        return None, None, notes


def decide(new: Report, candidates: list[Report], rules: DedupRules, known: dict | None = None) -> CrossDecision:
    """``known``: scores already worked out for some candidates (by id; None: not comparable),
    as ``score`` gives them for these very candidates (dedup/early.py, before the write lock)."""
    reasons = []
    if location_problem(new, rules) is not None:
        reasons.append(location_problem(new, rules))
        if parse_address(new.address) is None:
            return CrossDecision("new", reasons=tuple(reasons + ["no usable location: not compared"]))
    if not new.words:
        reasons.append("no text: never linked without an agent")
    scorer = Scorer(new, rules, rules.comparable_set(new.category))
    known = known or {}
    scores = [s for s in (known[old.id] if old.id in known else scorer(old)
                          for old in candidates if old.id != new.id) if s]
    scores.sort(key=lambda s: (-s.total, s.distance_m if s.distance_m is not None else 1e9))
    thresholds = rules.thresholds
    best = scores[0] if scores else None
    if best is not None and best.total >= thresholds.auto_link and best.may_link:
        urgent = new.priority == "urgent" or _priority(candidates, best) == "urgent"
        if urgent:
            reasons.append("urgent: linked and flagged for an agent")
        return CrossDecision("link", best, flagged=urgent, reasons=tuple(reasons), compared=len(scores))
    shown = tuple(s for s in scores if s.total >= thresholds.suggest)[: rules.max_suggestions]
    if best is not None and best.total >= thresholds.auto_link:
        reasons.append("above the auto-link threshold but " + ", ".join(best.notes) + ": suggested only")
    if shown:
        return CrossDecision("suggest", suggestions=shown, reasons=tuple(reasons), compared=len(scores))
    return CrossDecision("new", reasons=tuple(reasons), compared=len(scores))


def _priority(candidates: list[Report], chosen: Score) -> str:
    return next((c.priority for c in candidates if c.id == chosen.candidate_id), "routine")
