"""The blocking index: which open requests can be the same problem as a new one.

A request is filed under (category, grid cell) when it has usable coordinates and under
(category, street key) when it has an address: the two columns ``dedup_cell`` and
``dedup_street`` of the requests table, each indexed with category and created_at. The
candidates of a new request are the open requests of its comparable categories, in the
cells around it (as far as the category's radius) or on its street, within the window:
a handful of index range scans, never a scan of the backlog, and at most
``max_candidates`` rows (the most recent).
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from .config import DedupRules
from .geo import cell_of, cells_around, street_key, street_keys_around, usable_point
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

    One query per kind of place (cells, street) and of category (named, none), each
    matching its index exactly (category, place IN …, created_at ≥ …): the database reads
    only those rows. The statements are built once (expanding parameters) and reused."""
    categories = rules.comparable(report.category)
    named = [c for c in categories if c is not None]
    radius = rules.widest_radius(categories)
    since = report.created_at - rules.longest_window(categories)
    located = usable_point(report.lat, report.lon, rules.bounds) is None
    queries = []
    if located:
        queries.append(("cell", cells_around(report.lat, report.lon, radius)))
    streets = street_keys_around(report.address, radius)
    if streets:
        # Located requests on the street are found by their cell already: by street, only
        # those without usable coordinates are wanted.
        queries.append(("street_unlocated" if located else "street", streets))
    found = {}
    for place, keys in queries:
        for named_categories in (True, False):
            statement = _statement(place, named_categories)
            values = {"places": keys, "since": since, "limit": rules.max_candidates}
            if named_categories:
                values["categories"] = named
            # The status is checked here, not in SQL: with it there, planners may prefer the
            # (category, status, created_at) index and read every open request of the category.
            found.update((r.id, r) for r in session.execute(statement, values) if r.status in open_statuses)
    rows = sorted(found.values(), key=lambda r: r.created_at, reverse=True)[: rules.max_candidates]
    return [Report(id=r.id, code=r.code, category=r.category, created_at=r.created_at, text=r.description,
                   lat=r.lat, lon=r.lon, address=r.address, language=r.language, priority=r.priority)
            for r in rows]


@lru_cache(maxsize=8)
def _statement(place: str, named_categories: bool):
    from gateway.models import Request

    column = Request.dedup_cell if place == "cell" else Request.dedup_street
    where = [column.in_(bindparam("places", expanding=True)), Request.created_at >= bindparam("since")]
    if place == "street_unlocated":
        where.append(Request.dedup_cell.is_(None))
    where.append(Request.category.in_(bindparam("categories", expanding=True)) if named_categories
                 else Request.category.is_(None))
    return (select(Request.id, Request.code, Request.category, Request.created_at, Request.description,
                   Request.lat, Request.lon, Request.address, Request.language, Request.priority,
                   Request.status)
            .where(*where).order_by(Request.created_at.desc()).limit(bindparam("limit")))
