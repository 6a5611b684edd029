"""The dedup settings in config/dedup.yaml: thresholds, weights, radius and window per
category, related categories, city bounds. Validated on load with file, line and field in
every error (router.yamlfile); a broken edit keeps the last good settings in force."""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from router.yamlfile import ConfigError, Problem, load

FILE = "dedup.yaml"
log = logging.getLogger(__name__)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    auto_link: float = Field(90, ge=0, le=100)
    suggest: float = Field(55, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self):
        if self.suggest > self.auto_link:
            raise ValueError("suggest must not be above auto_link")
        return self


class Weights(_Model):
    place: float = Field(0.40, ge=0)
    text: float = Field(0.45, ge=0)
    time: float = Field(0.15, ge=0)

    @model_validator(mode="after")
    def _sum_to_one(self):
        if abs(self.place + self.text + self.time - 1) > 1e-6:
            raise ValueError("weights must add up to 1")
        return self


class SameCitizen(_Model):
    similarity: float = Field(80, ge=0, le=100)
    window_days: float = Field(14, gt=0)


class Reach(_Model):
    radius_m: float = Field(gt=0, le=5000)
    window_days: float = Field(gt=0, le=365)


class DedupRules(_Model):
    thresholds: Thresholds = Thresholds()
    weights: Weights = Weights()
    same_citizen: SameCitizen = SameCitizen()
    default: Reach = Reach(radius_m=100, window_days=7)
    categories: dict[str, Reach] = {}
    related: list[list[str]] = []
    bounds: tuple[float, float, float, float] | None = None  # south, west, north, east
    max_candidates: int = Field(200, ge=1, le=5000)
    max_suggestions: int = Field(3, ge=0, le=20)

    def reach(self, category: str | None) -> Reach:
        return self.categories.get(category or "", self.default)

    def window(self, category: str | None) -> timedelta:
        return timedelta(days=self.reach(category).window_days)

    # What depends on a category alone, worked out once per category (the settings never
    # change: a new file makes new DedupRules): each request asks several times.
    _once: dict = PrivateAttr(default_factory=dict)

    def model_copy(self, *, update=None, deep: bool = False):
        copied = super().model_copy(update=update, deep=deep)
        copied._once = {}  # worked out again from the copy's own settings
        return copied

    def once(self, what: str, category: str | None, work):
        key = (what, category)
        found = self._once.get(key)
        if found is None:
            found = self._once[key] = work()
        return found

    def comparable(self, category: str | None) -> tuple[str | None, ...]:
        """The category itself, its related ones, and None: an uncategorized request (in
        triage) may be any problem, so it is compared with every category listed here."""
        return self.once("comparable", category, lambda: self._comparable(category))

    def comparable_set(self, category: str | None) -> frozenset[str | None]:
        return self.once("comparable_set", category, lambda: frozenset(self.comparable(category)))

    def _comparable(self, category: str | None) -> tuple[str | None, ...]:
        found = {category, None}
        if category is None:
            found.update(self.categories)
        for group in self.related:
            if category in group:
                found.update(group)
        return tuple(sorted(found, key=lambda c: (c is None, c or "")))

    def widest_radius(self, categories) -> float:
        return max(self.reach(c).radius_m for c in categories)

    def longest_window(self, categories) -> timedelta:
        return max(self.window(c) for c in categories)


class _File(_Model):
    dedup: DedupRules


def load_dedup_rules(directory: Path, categories: set[str] | None = None) -> DedupRules:
    """Raises ConfigError (file, line, field) for a bad file; defaults when there is none."""
    path = Path(directory) / FILE
    if not path.exists():
        return DedupRules()
    doc = load(path)
    try:
        rules = _File.model_validate(doc.data).dedup
    except ValidationError as exc:
        raise ConfigError([doc.problem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]) from exc
    if categories is not None:
        unknown = [Problem(str(path), doc.line_of(("dedup", "categories", code)), f"dedup.categories.{code}",
                           f"unknown category '{code}'") for code in rules.categories if code not in categories]
        unknown += [doc.problem(("dedup", "related", i), f"unknown category '{code}'")
                    for i, group in enumerate(rules.related) for code in group if code not in categories]
        if unknown:
            raise ConfigError(unknown)
    return rules


_cache: dict[str, tuple[tuple, DedupRules]] = {}
_lock = threading.Lock()


def current_rules(directory: Path, categories: set[str] | None = None) -> DedupRules:
    """The settings in force, reloaded when the file changes; a broken edit is logged and the
    last good settings stay (the first load of a broken file raises ConfigError)."""
    path = Path(directory) / FILE
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.exists() else None
    key = str(path)
    with _lock:
        cached = _cache.get(key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            rules = load_dedup_rules(directory, categories)
        except ConfigError as exc:
            if cached is None:
                raise
            log.error("config/%s not reloaded, the last good settings stay: %s", FILE, exc)
            _cache[key] = (stamp, cached[1])
            return cached[1]
        _cache[key] = (stamp, rules)
        return rules
