"""Replays real requests in time order through the dedup step and measures it.

Used by tests/dedup/test_measured.py (the figures must not regress) and to write
docs/dedup.md: ``.venv/bin/python -m tests.dedup.replay`` prints the sweep.

The replay is the production decision (dedup.scoring.decide) fed directly rather than
through HTTP, with candidates taken from an in-memory copy of the production blocking index
(category × grid cell or street × time window, dedup/index.py's keys). A record is open from
its requested time until its updated time when the city closed it (the best available
stand-in for its closing time), so a duplicate of an already closed case is not findable,
as in production.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path

from dedup.config import DedupRules, load_dedup_rules
from dedup.geo import usable_point
from dedup.index import index_keys, search_keys
from dedup.scoring import Report, decide

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "dedup"
BOSTON_BOUNDS = (42.22, -71.20, 42.41, -70.98)  # south, west, north, east
BOSTON_SERVICES = {"Illegal Parking": "parking", "Abandoned Vehicle": "abandoned_vehicle"}


@dataclass
class Record:
    key: str
    report: Report
    closes_at: datetime | None
    duplicate_closed: bool


@dataclass
class Outcome:
    linked: dict[str, str] = field(default_factory=dict)  # record → master
    flagged: set[str] = field(default_factory=set)
    suggested: dict[str, list[str]] = field(default_factory=dict)  # record → candidates
    decisions: dict[str, object] = field(default_factory=dict)

    def root(self, key: str) -> str:
        while key in self.linked:
            key = self.linked[key]
        return key

    def connected(self) -> dict[str, str]:
        """Record → group, over links and suggestions: what an agent sees as one problem
        (confirming a suggestion merges the two groups)."""
        parent: dict[str, str] = {}

        def find(x):
            parent.setdefault(x, x)
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        edges = list(self.linked.items()) + [(a, b) for a, bs in self.suggested.items() for b in bs]
        for a, b in edges:
            parent[find(a)] = find(b)
        return {x: find(x) for x in parent}


@lru_cache(maxsize=1)
def _categorizer():
    from router.loader import load_rulebook

    return load_rulebook(ROOT / "config").categorizer


def boston_category(record: dict) -> str | None:
    """Boston's service for parking and abandoned cars; the catalogue's categorizer (as in
    production) for Boston's catch-all "Other"."""
    if record["service_name"] in BOSTON_SERVICES:
        return BOSTON_SERVICES[record["service_name"]]
    return _categorizer().categorize(record.get("description") or "").category


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def load_boston() -> list[Record]:
    with gzip.open(FIXTURES / "boston_open311_2018-05.json.gz", "rt", encoding="utf-8") as f:
        rows = json.load(f)
    records = []
    for i, row in enumerate(rows):
        notes = row.get("status_notes") or ""
        report = Report(
            created_at=_time(row["requested_datetime"]), text=row.get("description") or "",
            category=boston_category(row), lat=row.get("lat"), lon=row.get("long"),
            address=row.get("address"), language="en", id=i, code=row["service_request_id"])
        closes = _time(row["updated_datetime"]) if row["status"] == "closed" and row.get("updated_datetime") else None
        records.append(Record(row["service_request_id"], report, closes, "duplicate" in notes.lower()))
    records.sort(key=lambda r: r.report.created_at)
    return records


def verified_pairs() -> list[tuple[str, str]]:
    """(duplicate, quoted original) for the 66 links whose quoted id is in the data."""
    keys = {r.key for r in load_boston_cached()}
    pairs = []
    with open(FIXTURES / "boston_open311_2018-05_duplicate_links.csv", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            for ref in filter(None, row["referenced_request_ids"].split(";")):
                if ref in keys and row["duplicate_request_id"] in keys:
                    pairs.append((row["duplicate_request_id"], ref))
    return pairs


@lru_cache(maxsize=1)
def _boston() -> tuple[Record, ...]:
    return tuple(load_boston())


def load_boston_cached() -> tuple[Record, ...]:
    return _boston()


def replay(records, rules: DedupRules) -> Outcome:
    """Every record in time order: decide against the open ones, then become open itself
    (unless linked as a duplicate)."""
    outcome = Outcome()
    index: dict[tuple, list[Record]] = defaultdict(list)
    by_id = {}
    for record in records:
        new = record.report
        candidates = _candidates(index, by_id, new, rules, outcome)
        decision = decide(new, candidates, rules)
        outcome.decisions[record.key] = decision
        if decision.action == "link":
            outcome.linked[record.key] = decision.master.code
            if decision.flagged:
                outcome.flagged.add(record.key)
            continue
        if decision.action == "suggest":
            outcome.suggested[record.key] = [s.code for s in decision.suggestions]
        by_id[new.id] = record
        for key in index_keys(new, rules):
            index[key].append(record)
    return outcome


def _candidates(index, by_id, new: Report, rules: DedupRules, outcome: Outcome) -> list[Report]:
    found = {}
    earliest = new.created_at - rules.longest_window(rules.comparable(new.category))
    located = usable_point(new.lat, new.lon, rules.bounds) is None
    for key in search_keys(new, rules):
        for record in index.get(key, ()):
            report = record.report
            if located and key[1] == "street" and usable_point(report.lat, report.lon, rules.bounds) is None:
                continue  # as in production: found by its cell, if near
            open_now = record.closes_at is None or record.closes_at > new.created_at
            if open_now and report.created_at >= earliest and record.key not in outcome.linked:
                found[report.id] = report
    ordered = sorted(found.values(), key=lambda r: r.created_at, reverse=True)
    return ordered[: rules.max_candidates]


@dataclass
class Figures:
    auto_link: float
    suggest: float
    pairs: int
    pairs_linked: int
    pairs_suggested: int
    pairs_closed_first: int
    others: int
    others_wrongly_linked: int
    records_with_suggestions: int
    suggestions: int
    duplicates: int
    duplicates_found: int

    @property
    def recall(self) -> float:
        return (self.pairs_linked + self.pairs_suggested) / self.pairs

    @property
    def wrong_link_rate(self) -> float:
        return self.others_wrongly_linked / self.others


def measure(records, pairs, rules: DedupRules) -> Figures:
    outcome = replay(records, rules)
    by_key = {r.key: r for r in records}
    linked = suggested = closed_first = 0
    groups = outcome.connected()
    partners = defaultdict(set)
    for a, b in pairs:
        partners[a].add(b)
        partners[b].add(a)
        first, second = sorted((by_key[a], by_key[b]), key=lambda r: r.report.created_at)
        if outcome.root(a) == outcome.root(b):
            linked += 1
        elif groups.get(a, a) == groups.get(b, b):
            suggested += 1
        elif first.closes_at is not None and first.closes_at <= second.report.created_at:
            closed_first += 1
    others = [r for r in records if not r.duplicate_closed]
    wrong = 0
    for record in others:
        if record.key in outcome.linked:
            master = outcome.root(record.key)
            if not any(outcome.root(p) == master for p in partners[record.key]):
                wrong += 1
    with_suggestions = list(outcome.suggested)
    dups = [r for r in records if r.duplicate_closed]
    found = sum(1 for r in dups if r.key in outcome.linked or r.key in outcome.suggested)
    return Figures(rules.thresholds.auto_link, rules.thresholds.suggest, len(pairs), linked, suggested,
                   closed_first, len(others), wrong, len(with_suggestions),
                   sum(len(v) for v in outcome.suggested.values()), len(dups), found)


def load_french() -> tuple[list[Record], list[tuple[str, str]]]:
    """The French set written for the tests (fixtures/dedup/README.md) and its marked pairs."""
    document = json.loads((FIXTURES / "bellerive_fr__written_for_tests.json").read_text(encoding="utf-8"))
    records, pairs = [], []
    for i, row in enumerate(document["requests"]):
        report = Report(created_at=_time(row["requested_datetime"]), text=row["description"],
                        category=row["category"], lat=row["lat"], lon=row["lon"], address=row["address"],
                        language="fr", id=i, code=row["id"],
                        priority="urgent" if row["category"] == "water_main_break" else "routine")
        records.append(Record(row["id"], report, None, row["duplicate_of"] is not None))
        if row["duplicate_of"]:
            pairs.append((row["id"], row["duplicate_of"]))
    records.sort(key=lambda r: r.report.created_at)
    return records, pairs


def boston_rules(auto_link: float | None = None, suggest: float | None = None) -> DedupRules:
    rules = load_dedup_rules(ROOT / "config")
    thresholds = rules.thresholds.model_copy(update={k: v for k, v in
                                                     (("auto_link", auto_link), ("suggest", suggest)) if v is not None})
    return rules.model_copy(update={"bounds": BOSTON_BOUNDS, "thresholds": thresholds})


def table(rows: list[Figures]) -> str:
    lines = ["| auto_link | suggest | pairs linked | pairs suggested | recall (linked or suggested) "
             "| others wrongly auto-linked | records with suggestions | suggestions shown "
             "| all 417 dup-closed found |",
             "|---|---|---|---|---|---|---|---|---|"]
    for f in rows:
        lines.append(f"| {f.auto_link:g} | {f.suggest:g} | {f.pairs_linked}/{f.pairs} | {f.pairs_suggested} "
                     f"| {f.recall:.1%} | {f.others_wrongly_linked}/{f.others} ({f.wrong_link_rate:.2%}) "
                     f"| {f.records_with_suggestions} | {f.suggestions} | {f.duplicates_found}/{f.duplicates} |")
    return "\n".join(lines)


def main() -> None:
    records, pairs = list(load_boston_cached()), verified_pairs()
    default = boston_rules()
    print(f"Boston, {len(records)} records, {len(pairs)} verified pairs; chosen thresholds:")
    print(table([measure(records, pairs, default)]))
    print("\nSweep:")
    rows = [measure(records, pairs, boston_rules(a, s)) for a in (80, 85, 88, 90, 92, 95) for s in (45, 50, 55, 60, 65)
            if s <= a]
    print(table(rows))
    records, pairs = load_french()
    rules = load_dedup_rules(ROOT / "config")
    print(f"\nFrench set written for the tests, {len(records)} records, {len(pairs)} marked pairs:")
    print(table([measure(records, pairs, rules)]))
    outcome = replay(records, rules)
    for record in records:
        decision = outcome.decisions[record.key]
        print(f"  {record.key} {decision.action:8} {outcome.linked.get(record.key) or outcome.suggested.get(record.key) or ''}"
              f" {'flagged' if decision.flagged else ''} {'; '.join(decision.reasons)}")


if __name__ == "__main__":
    main()
