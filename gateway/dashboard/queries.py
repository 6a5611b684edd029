"""The dashboards' aggregates: SQLAlchemy Core queries that run on SQLite and PostgreSQL.

Every query is bounded by a period on ``requests.created_at`` and served by the covering
index ix_requests_period (created_at, channel, category, department, district), so a month
of a 1 M-requests-a-year city is read from the index alone. Percentiles are computed in
Python on the period's durations; past SAMPLE_LIMIT rows a systematic sample (every k-th id)
keeps a page under a second, and the page says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import and_, case, exists, func, literal, select

from ..models import OPEN_STATUSES, Delivery, Follower, Request

SAMPLE_LIMIT = 200_000
SYNC_ACK_CHANNELS = ("api", "web", "walk_in", "phone", "open311")  # the code is in the answer itself
AGE_BANDS = ((1, "< 1 d"), (3, "1–3 d"), (7, "3–7 d"), (30, "7–30 d"), (90, "30–90 d"), (None, "> 90 d"))
DIMENSIONS = ("channel", "category", "department", "district")


@dataclass(frozen=True)
class Filters:
    start: datetime
    end: datetime
    unit: str = "day"  # day | week | month
    district: str | None = None
    department: str | None = None

    @property
    def previous(self) -> Filters:
        span = self.end - self.start
        return replace(self, start=self.start - span, end=self.start)

    def where(self, start: datetime | None = None):
        conditions = [Request.created_at >= (start or self.start), Request.created_at < self.end]
        if self.district:
            conditions.append(Request.district == self.district)
        if self.department:
            conditions.append(Request.department == self.department)
        return and_(*conditions)


def bucket(dialect: str, unit: str, column=Request.created_at):
    """The first day of the column's day / week (Monday) / month, as 'YYYY-MM-DD', in UTC."""
    if dialect == "sqlite":
        if unit == "week":
            return func.date(column, "weekday 0", "-6 days")
        if unit == "month":
            return func.strftime("%Y-%m-01", column)
        return func.date(column)
    return func.to_char(func.date_trunc(unit, func.timezone("UTC", column)), "YYYY-MM-DD")


def seconds_between(dialect: str, later, earlier):
    if dialect == "sqlite":
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def volumes(connection, filters: Filters, by: str) -> list[dict]:
    """[{key, count, previous}] for the period and the one before it, largest first."""
    column = getattr(Request, by)
    current = Request.created_at >= filters.start
    rows = connection.execute(
        select(column.label("key"), func.sum(case((current, 1), else_=0)).label("count"),
               func.sum(case((current, 0), else_=1)).label("previous"))
        .where(filters.where(start=filters.previous.start)).group_by(column)
    ).all()
    found = [{"key": r.key, "count": int(r.count), "previous": int(r.previous)} for r in rows]
    return sorted(found, key=lambda r: (-r["count"], -r["previous"], str(r["key"])))


def series(connection, filters: Filters, by: str) -> list[tuple[str, str | None, int]]:
    """(bucket, key, count) over the period, ``by`` one of DIMENSIONS."""
    day = bucket(connection.dialect.name, filters.unit)
    column = getattr(Request, by)
    return [tuple(r) for r in connection.execute(
        select(day.label("day"), column, func.count()).where(filters.where()).group_by(day, column).order_by(day))]


def delays(connection, filters: Filters) -> tuple[dict, int, int]:
    """({(dimension, key): {"acknowledge": [p50, p90, n], "route": …, "resolve": …}}, rows read, step)."""
    dialect = connection.dialect.name
    total = connection.scalar(select(func.count()).select_from(Request).where(filters.where())) or 0
    step = max(1, math.ceil(total / SAMPLE_LIMIT))
    query = select(
        Request.category, Request.department,
        seconds_between(dialect, Request.acknowledged_at, Request.created_at),
        seconds_between(dialect, Request.routed_at, Request.created_at),
        seconds_between(dialect, Request.resolved_at, Request.created_at),
    ).where(filters.where(), Request.duplicate_of_id.is_(None))
    if step > 1:
        query = query.where(Request.id % step == 0)
    samples: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    read = 0
    for category, department, *durations in connection.execute(query):
        read += 1
        for group in (("all", None), ("category", category), ("department", department)):
            for name, value in zip(("acknowledge", "route", "resolve"), durations, strict=True):
                if value is not None:
                    samples[group][name].append(float(value))
    return {group: {name: _percentiles(values) for name, values in kinds.items()}
            for group, kinds in samples.items()}, read, step


def _percentiles(values: list[float]) -> tuple[float, float, int]:
    values.sort()
    return _rank(values, 0.5), _rank(values, 0.9), len(values)


def _rank(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def sla(connection, filters: Filters, now: datetime) -> list[dict]:
    """Per department: requests due in the period, resolved on time, late, still open past due."""
    due = and_(Request.sla_due_at.is_not(None), Request.duplicate_of_id.is_(None))
    on_time = and_(Request.resolved_at.is_not(None), Request.resolved_at <= Request.sla_due_at)
    overdue_open = and_(Request.resolved_at.is_(None), Request.status.in_(OPEN_STATUSES), Request.sla_due_at < now)
    rows = connection.execute(
        select(Request.department, func.count(), func.sum(case((on_time, 1), else_=0)),
               func.sum(case((overdue_open, 1), else_=0)))
        .where(filters.where(), due, Request.sla_due_at < now).group_by(Request.department)
    ).all()
    found = [{"key": d, "due": int(n), "on_time": int(ok or 0), "overdue_open": int(late or 0)} for d, n, ok, late in rows]
    return sorted(found, key=lambda r: -r["due"])


def backlog(connection, filters: Filters, now: datetime) -> list[dict]:
    """Open requests by age band and department (whatever the period: the backlog is today's)."""
    band = case(*[(Request.created_at >= now - timedelta(days=days), literal(label))
                  for days, label in AGE_BANDS if days], else_=literal(AGE_BANDS[-1][1]))
    conditions = [Request.status.in_(OPEN_STATUSES), Request.created_at < now]
    if filters.district:
        conditions.append(Request.district == filters.district)
    if filters.department:
        conditions.append(Request.department == filters.department)
    rows = connection.execute(select(band.label("band"), Request.department, func.count())
                              .where(*conditions).group_by(band, Request.department)).all()
    return [{"band": b, "key": d, "count": int(n)} for b, d, n in rows]


def duplicate_share(connection, filters: Filters) -> tuple[int, int]:
    row = connection.execute(select(func.count(), func.sum(case((Request.duplicate_of_id.is_not(None), 1), else_=0)))
                             .where(filters.where())).one()
    return int(row[0] or 0), int(row[1] or 0)


def top_masters(connection, filters: Filters, limit: int = 10) -> list[dict]:
    """The requests most often reported again: linked duplicates and followers, in the period."""
    linked = (select(Request.duplicate_of_id.label("master"), func.count().label("n"))
              .where(filters.where(), Request.duplicate_of_id.is_not(None))
              .group_by(Request.duplicate_of_id).order_by(func.count().desc(), Request.duplicate_of_id)
              .limit(limit * 3).subquery())
    masters = connection.execute(
        select(Request.id, Request.code, Request.category, Request.district, Request.status, linked.c.n)
        .join(linked, linked.c.master == Request.id)).all()
    followers = dict(connection.execute(
        select(Follower.request_id, func.count()).where(Follower.request_id.in_([m.id for m in masters]))
        .group_by(Follower.request_id)).all()) if masters else {}
    rows = [{"code": m.code, "category": m.category, "district": m.district, "status": m.status,
             "duplicates": int(m.n), "followers": int(followers.get(m.id, 0))} for m in masters]
    return sorted(rows, key=lambda r: (-r["followers"], -r["duplicates"], r["code"]))[:limit]


def recurring(connection, end: datetime, weeks: int = 8, cell_degrees: float = 0.002,
              filters: Filters | None = None) -> list[dict]:
    """Places (cells of ~200 m) where the same category came back week after week.

    (category, cell, week) counts from SQL; kept when reported in at least 3 distinct weeks
    and 5 times in all."""
    start = end - timedelta(weeks=weeks)
    dialect = connection.dialect.name
    scale = 1 / cell_degrees
    x = func.cast(func.round(Request.lon * scale), _int())
    y = func.cast(func.round(Request.lat * scale), _int())
    week = bucket(dialect, "week")
    conditions = [Request.created_at >= start, Request.created_at < end, Request.lat.is_not(None),
                  Request.lon.is_not(None), Request.duplicate_of_id.is_(None)]
    if filters and filters.district:
        conditions.append(Request.district == filters.district)
    if filters and filters.department:
        conditions.append(Request.department == filters.department)
    rows = connection.execute(
        select(Request.category, x, y, week, func.count(), func.max(Request.district))
        .where(*conditions).group_by(Request.category, x, y, week)).all()
    cells: dict[tuple, dict] = {}
    for category, cx, cy, _week, count, district in rows:
        cell = cells.setdefault((category, cx, cy), {"category": category, "district": district, "weeks": 0,
                                                     "count": 0, "lat": round(cy * cell_degrees, 4),
                                                     "lon": round(cx * cell_degrees, 4)})
        cell["weeks"] += 1
        cell["count"] += int(count)
    spots = [c for c in cells.values() if c["weeks"] >= 3 and c["count"] >= 5]
    return sorted(spots, key=lambda c: (-c["weeks"], -c["count"], c["category"]))


def _int():
    from sqlalchemy import Integer

    return Integer


def rising(by_category: list[dict], minimum: int = 10, ratio: float = 1.25) -> list[dict]:
    """Categories whose volume grew by a quarter or more over the previous period."""
    found = [dict(r, growth=(r["count"] - r["previous"]) / r["previous"] if r["previous"] else None)
             for r in by_category if r["count"] >= minimum and r["count"] >= ratio * max(r["previous"], 1)]
    return sorted(found, key=lambda r: -(r["growth"] if r["growth"] is not None else math.inf))


def own_channel(connection, filters: Filters) -> list[dict]:
    """Per channel: requests and those acknowledged on the channel the citizen used."""
    delivered_there = exists().where(
        Delivery.request_id == Request.id, Delivery.purpose == "notify", Delivery.target == Request.channel,
        Delivery.state == "delivered", Delivery.idempotency_key.like("%:notify:acknowledgement"))
    own = case((and_(Request.channel.in_(SYNC_ACK_CHANNELS), Request.acknowledged_at.is_not(None)), 1),
               (delivered_there, 1), else_=0)
    rows = connection.execute(select(Request.channel, func.count(), func.sum(own))
                              .where(filters.where()).group_by(Request.channel)).all()
    found = [{"key": c, "count": int(n), "own": int(o or 0)} for c, n, o in rows]
    return sorted(found, key=lambda r: -r["count"])
