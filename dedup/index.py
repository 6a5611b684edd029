"""The blocking index: which open requests can be the same problem as a new one.

A request is filed under (category, grid cell) when it has usable coordinates and under
(category, street key) when it has an address: the two columns ``dedup_cell`` and
``dedup_street`` of the requests table, each indexed with category and created_at. The
candidates of a new request are the open requests of its comparable categories, in the
cells around it (as far as the category's radius) or on its street, within the window:
a handful of index range scans, never a scan of the backlog, and at most
``max_candidates`` rows (the most recent).

A cell is about 155 m wide, wider than most radii: the rows found by cell are kept only
inside the radius' bounding box before they leave the database, and only the cells that box
overlaps are searched (1 to 4 for a pothole's 40 m, where the 3 × 3 cells around held rows
the box then rejected; the list is padded to a fixed length per radius, so the statement's
text, and the database's prepared statement, stay the same). The rows on the new request's
street blocks are found whatever their coordinates, since scoring compares addresses too.
Scoring finds every other row too far or too old (dedup/scoring.py ``score``).

On SQLite a pipeline batch makes the search before it takes the write lock, and catches up
inside it with the requests written meanwhile, tested against the same condition in Python
(``Search.matches``; dedup/early.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import and_, bindparam, select, union_all
from sqlalchemy.orm import Session

from .config import DedupRules
from .geo import (
    EARTH_M,
    cell_of,
    cells_around,
    cells_in_box,
    parse_address,
    street_key,
    street_keys_around,
    usable_point,
)
from .scoring import Report


def stored_keys(lat, lon, address, rules: DedupRules) -> tuple[str | None, str | None]:
    """(dedup_cell, dedup_street) to store with a request."""
    cell = cell_of(lat, lon) if usable_point(lat, lon, rules.bounds) is None else None
    return cell, street_key(address)


def index_keys(report: Report, rules: DedupRules) -> list[tuple]:
    cell, street = stored_keys(report.lat, report.lon, report.address, rules)
    keys = [(report.category, "cell", cell)] if cell else []
    return keys + ([(report.category, "street", street)] if street else [])


def search_keys(report: Report, rules: DedupRules) -> list[tuple]:
    categories = rules.comparable(report.category)
    radius = rules.widest_radius(categories)
    keys = []
    if usable_point(report.lat, report.lon, rules.bounds) is None:
        cells = cells_around(report.lat, report.lon, radius)
        keys += [(c, "cell", cell) for c in categories for cell in cells]
    streets = street_keys_around(report.address, radius)
    keys += [(c, "street", street) for c in categories for street in streets]
    return keys


def candidates(session: Session, report: Report, rules: DedupRules, open_statuses) -> list[Report]:
    """Open requests that may be the same problem as ``report`` (most recent first).

    One statement, one round trip: a UNION ALL of one query per kind of place (cells,
    street blocks) and group of categories, each matching its index exactly (category IN …,
    place IN …, created_at ≥ …), so the database reads only those rows. Categories are
    grouped by the radius and window scoring gives them against this report (the wider of
    the two categories'), so each group is searched only as far and as long ago as it can
    be compared: an uncategorized report is compared with every category, and most are
    neither 400 m wide like snow removal nor 30 days long like potholes. The statement is
    built once per shape (expanding parameters) and reused."""
    session.flush()  # what Session.execute does first; the statement itself is Core, run on the connection
    found = search(session.connection(), report, rules)
    return kept(found.rows.values() if found is not None else (), rules, open_statuses)


@dataclass
class Search:
    """One candidate search: its conditions and the rows it found (by id, open or not).
    ``matches`` is the statement's condition for one row, in Python (dedup/early.py catches
    up with it)."""

    groups: list  # per group of categories: (categories, None: the uncategorized; since; cells; box; streets)
    limit: int  # rows per part of the statement
    rows: dict = field(default_factory=dict)

    @property
    def full(self) -> bool:
        """A part may have left rows out (its LIMIT reached): the rows may not be all those
        matching."""
        return len(self.rows) >= self.limit

    def matches(self, row) -> bool:
        for named, since, cells, box, streets in self.groups:
            if (row.category is not None) if named is None else (row.category not in named):
                continue
            if row.created_at < since:
                continue
            if cells is not None and row.dedup_cell in cells and row.lat is not None and row.lon is not None \
                    and box[0] <= row.lat <= box[1] and box[2] <= row.lon <= box[3]:
                return True
            if streets is not None and row.dedup_street in streets:
                return True
        return False


def search(connection, report: Report, rules: DedupRules) -> Search | None:
    """The candidate statement run for ``report`` on ``connection`` (None: the report has no
    usable place, nothing to search)."""
    planned = plan(report, rules)
    if planned is None:
        return None
    found, values, shape = planned
    for row in connection.execute(_statement(*shape), values):
        found.rows[row.id] = row
    return found


def plan(report: Report, rules: DedupRules) -> tuple[Search, dict, tuple] | None:
    """The search for ``report``, not run yet: (its conditions, with no rows; the statement's
    parameters; the statement's shape), or None when the report has no usable place."""
    located = usable_point(report.lat, report.lon, rules.bounds) is None
    addressed = parse_address(report.address) is not None  # has street keys
    if not located and not addressed:
        return None
    groups = rules.once("groups", report.category,
                        lambda: _groups(report.category, rules.comparable(report.category), rules))
    values = {"limit": rules.max_candidates}
    conditions = []
    for i, ((reach_m, days), named) in enumerate(groups):
        since = report.created_at - timedelta(days=days)
        values.update({f"categories_{i}": named, f"since_{i}": since})
        cells = box = streets = None
        if located:  # the rows inside the box, found in the cells that can hold them
            box = _box(report.lat, report.lon, reach_m)
            cells = cells_in_box(*box, size=len(cells_around(report.lat, report.lon, reach_m)))
            values.update({f"cells_{i}": cells, **dict(zip(
                (f"{i}_south", f"{i}_north", f"{i}_west", f"{i}_east"), box, strict=True))})
        if addressed:
            streets = values[f"streets_{i}"] = street_keys_around(report.address, reach_m)
        conditions.append((None if named is None else frozenset(named), since,
                           None if cells is None else frozenset(cells), box,
                           None if streets is None else frozenset(streets)))
    shape = (tuple(named is None for _, named in groups), located, addressed)
    return Search(conditions, rules.max_candidates), values, shape


def kept(rows, rules: DedupRules, open_statuses, built: dict | None = None) -> list[Report]:
    """The open ones of ``rows``, most recent first (the last filed first, on equal times:
    the order does not depend on how the rows were found), at most ``max_candidates``, as
    Reports (``built``: those already made, by id, for these very rows)."""
    # The status is checked here, not in SQL: with it there, planners may prefer another
    # index and read every open request of the category.
    rows = sorted((r for r in rows if r.status in open_statuses), key=lambda r: (r.created_at, r.id),
                  reverse=True)[: rules.max_candidates]
    built = built or {}
    return [built[r.id] if r.id in built else report_of_row(r) for r in rows]


def report_of_row(row) -> Report:
    return Report(id=row.id, code=row.code, category=row.category, created_at=row.created_at, text=row.description,
                  lat=row.lat, lon=row.lon, address=row.address, language=row.language, priority=row.priority)


def _groups(category: str | None, comparable, rules: DedupRules) -> list[tuple[tuple[float, float], list | None]]:
    """((radius, window days), categories) for the comparable categories, the wider of each
    one's reach and ``category``'s, as scoring compares them; the uncategorized (None) last."""
    mine = rules.reach(category)
    groups: dict[tuple[float, float], list[str]] = {}
    for other in comparable:
        if other is not None:
            reach = rules.reach(other)
            key = (max(mine.radius_m, reach.radius_m), max(mine.window_days, reach.window_days))
            groups.setdefault(key, []).append(other)
    none = rules.reach(None)
    return sorted(groups.items()) + [((max(mine.radius_m, none.radius_m), max(mine.window_days, none.window_days)),
                                      None)]


def _box(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """(south, north, west, east): the bounding box of every point within ``radius_m`` of
    (lat, lon), 1 % wider: a great-circle distance is at least the difference in latitude,
    and a degree of longitude is narrowest at the box's edge farthest from the equator."""
    dlat = math.degrees(radius_m / EARTH_M) * 1.01
    dlon = dlat / max(0.05, math.cos(math.radians(min(90.0, abs(lat) + dlat))))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


@lru_cache(maxsize=64)
def _statement(groups: tuple[bool, ...], by_cell: bool, by_street: bool):
    """One part by cell (``by_cell``: the report has usable coordinates) and one by street
    block (``by_street``: it has an address) per group of categories (True: the
    uncategorized). A request is found by its street block whatever its coordinates: a GPS
    fix can be far off when the two addresses typed are the same house."""
    from gateway.models import Request

    columns = searched_columns()
    parts = []
    for i, none in enumerate(groups):
        category = Request.category.is_(None) if none else \
            Request.category.in_(bindparam(f"categories_{i}", expanding=True))
        recent = Request.created_at >= bindparam(f"since_{i}")
        places = []
        if by_cell:  # the cells around, then only the radius' bounding box
            places.append(and_(Request.dedup_cell.in_(bindparam(f"cells_{i}", expanding=True)),
                               Request.lat.between(bindparam(f"{i}_south"), bindparam(f"{i}_north")),
                               Request.lon.between(bindparam(f"{i}_west"), bindparam(f"{i}_east"))))
        if by_street:
            places.append(Request.dedup_street.in_(bindparam(f"streets_{i}", expanding=True)))
        parts += [select(*columns).where(category, place, recent).order_by(Request.created_at.desc())
                  .limit(bindparam("limit")).subquery() for place in places]
    return union_all(*[select(part) for part in parts])


def searched_columns() -> tuple:
    """What the search reads of a request: what scoring compares, its status, and its keys
    (for ``Search.matches``)."""
    from gateway.models import Request

    return (Request.id, Request.code, Request.category, Request.created_at, Request.description,
            Request.lat, Request.lon, Request.address, Request.language, Request.priority,
            Request.status, Request.dedup_cell, Request.dedup_street)
