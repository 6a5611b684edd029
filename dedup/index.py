"""The blocking index: which open requests can be the same problem as a new one.

A request is filed under (category, grid cell) when it has usable coordinates and under
(category, street key) when it has an address: the two columns ``dedup_cell`` and
``dedup_street`` of the requests table, each indexed with category and created_at. The
candidates of a new request are the open requests of its comparable categories, in the
cells around it (as far as the category's radius) or on its street, within the window:
a handful of index range scans, never a scan of the backlog, and at most
``max_candidates`` rows (the most recent).

A cell is about 155 m wide, so the cells around a point cover several times the circle of
the radius: the rows found by cell are also kept only inside the radius' bounding box (or
on the new request's street blocks, which addresses compare by), before they leave the
database. Scoring would find every other one too far (dedup/scoring.py ``_place``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from sqlalchemy import and_, bindparam, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from .config import DedupRules
from .geo import EARTH_M, cell_of, cells_around, street_key, street_keys_around, usable_point
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
    street blocks) and of category (named, none), each matching its index exactly
    (category, place IN …, created_at ≥ …), so the database reads only those rows. The
    statement is built once per shape (expanding parameters) and reused."""
    categories = rules.comparable(report.category)
    radius = rules.widest_radius(categories)
    located = usable_point(report.lat, report.lon, rules.bounds) is None
    streets = street_keys_around(report.address, radius)
    if not located and not streets:
        return []
    values = {"since": report.created_at - rules.longest_window(categories), "limit": rules.max_candidates,
              "categories": [c for c in categories if c is not None]}
    if located:
        values["cells"] = cells_around(report.lat, report.lon, radius)
        named = rules.widest_radius([c for c in categories if c is not None] + [report.category])
        values.update(_box("", report.lat, report.lon, named))
        values.update(_box("none_", report.lat, report.lon, max(rules.reach(report.category).radius_m,
                                                               rules.reach(None).radius_m)))
    if streets:
        values["streets"] = streets
    found = {}
    session.flush()  # what Session.execute does first; the statement itself is Core, run on the connection
    for row in session.connection().execute(_statement(located, bool(streets)), values):
        # The status is checked here, not in SQL: with it there, planners may prefer another
        # index and read every open request of the category.
        if row.status in open_statuses:
            found[row.id] = row
    rows = sorted(found.values(), key=lambda r: r.created_at, reverse=True)[: rules.max_candidates]
    return [Report(id=r.id, code=r.code, category=r.category, created_at=r.created_at, text=r.description,
                   lat=r.lat, lon=r.lon, address=r.address, language=r.language, priority=r.priority)
            for r in rows]


def _box(prefix: str, lat: float, lon: float, radius_m: float) -> dict:
    """The bounding box of every point within ``radius_m`` of (lat, lon), 1 % wider: a
    great-circle distance is at least the difference in latitude, and a degree of longitude
    is narrowest at the box's edge farthest from the equator."""
    dlat = math.degrees(radius_m / EARTH_M) * 1.01
    dlon = dlat / max(0.05, math.cos(math.radians(min(90.0, abs(lat) + dlat))))
    return {f"{prefix}south": lat - dlat, f"{prefix}north": lat + dlat,
            f"{prefix}west": lon - dlon, f"{prefix}east": lon + dlon}


@lru_cache(maxsize=4)
def _statement(by_cell: bool, by_street: bool):
    from gateway.models import Request

    def near(prefix: str):
        inside = and_(Request.lat.between(bindparam(f"{prefix}south"), bindparam(f"{prefix}north")),
                      Request.lon.between(bindparam(f"{prefix}west"), bindparam(f"{prefix}east")))
        # Far by coordinates but a few numbers away on the same street: compared by address.
        return or_(inside, Request.dedup_street.in_(bindparam("streets", expanding=True))) if by_street else inside

    parts = []
    places = ([("cell", Request.dedup_cell, "cells")] if by_cell else []) + \
        ([("street", Request.dedup_street, "streets")] if by_street else [])
    for place, column, values in places:
        for category, prefix in ((Request.category.in_(bindparam("categories", expanding=True)), ""),
                                 (Request.category.is_(None), "none_")):
            conditions = [category, column.in_(bindparam(values, expanding=True)),
                          Request.created_at >= bindparam("since")]
            if place == "cell":
                conditions.append(near(prefix))
            elif by_cell:  # a located request on the street is found by its cell, if near
                # Written so that no index can serve it (one on dedup_cell would read every
                # request of the category without a cell).
                conditions.append(func.coalesce(Request.dedup_cell, "") == "")
            parts.append(
                select(Request.id, Request.code, Request.category, Request.created_at, Request.description,
                       Request.lat, Request.lon, Request.address, Request.language, Request.priority,
                       Request.status, Request.dedup_cell, literal(place).label("place"))
                .where(*conditions)
                .order_by(Request.created_at.desc()).limit(bindparam("limit"))
                .subquery())
    return union_all(*[select(part) for part in parts])
