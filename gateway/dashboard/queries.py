"""The dashboards' aggregates: SQLAlchemy Core queries that run on SQLite and PostgreSQL.

Every query is bounded by a period on ``requests.created_at`` and served by the covering
index ix_requests_period (created_at, channel, category, department, district), so a month
of a 1 M-requests-a-year city is read from the index alone. Percentiles: percentile_cont
on PostgreSQL; on SQLite, in Python on the period's durations, from a systematic sample
(every k-th id) past SAMPLE_LIMIT rows, which the page says.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Integer, and_, case, cast, distinct, exists, func, literal, or_, select, text

from ..models import OPEN_STATUSES, DashboardDay, Delivery, Follower, Request
from . import rollup

SAMPLE_LIMIT = 50_000
DENSE_CELLS = 20
STAGES = ("acknowledge", "route", "resolve")
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
        return and_(Request.created_at >= (start or self.start), Request.created_at < self.end, *self.narrowing())

    def narrowing(self) -> list:
        """District and department conditions. coalesce() keeps SQLite on the period's covering
        index: on a bare ``department = ?`` it picked a department's index and read every
        request the department ever had."""
        conditions = []
        if self.district:
            conditions.append(func.coalesce(Request.district, "") == self.district)
        if self.department:
            conditions.append(func.coalesce(Request.department, "") == self.department)
        return conditions


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


def volumes(connection, filters: Filters, by: str, use_rollup: bool = True) -> list[dict]:
    """[{key, count, previous}] for the period and the one before it, largest first."""
    return all_volumes(connection, filters, use_rollup)[by]


def all_volumes(connection, filters: Filters, use_rollup: bool = True) -> dict[str, list[dict]]:
    """volumes() for every dimension: settled days from the roll-up, the rest from one scan of
    the covering index."""
    begin = filters.previous.start
    live_from, rows = begin, []
    upto = _rollup_end(filters, begin) if use_rollup else None
    if upto is not None:
        rollup.ensure(connection, begin, upto)
        current = DashboardDay.day >= filters.start.date().isoformat()
        columns = [getattr(DashboardDay, d) for d in DIMENSIONS]
        rows += [(*(value or None for value in row[:4]), row[4], row[5]) for row in connection.execute(
            select(*columns, func.sum(case((current, DashboardDay.requests), else_=0)),
                   func.sum(case((current, 0), else_=DashboardDay.requests)))
            .where(DashboardDay.day >= begin.date().isoformat(), DashboardDay.day < upto.date().isoformat(),
                   *_rollup_narrowing(filters))
            .group_by(*columns))]
        live_from = upto
    if live_from < filters.end:
        current = Request.created_at >= filters.start
        columns = [getattr(Request, d) for d in DIMENSIONS]
        rows += connection.execute(
            select(*columns, func.sum(case((current, 1), else_=0)), func.sum(case((current, 0), else_=1)))
            .where(filters.where(start=live_from)).group_by(*columns)
        ).all()
    result = {}
    for index, dimension in enumerate(DIMENSIONS):
        totals: dict = defaultdict(lambda: [0, 0])
        for row in rows:
            totals[row[index]][0] += int(row[-2])
            totals[row[index]][1] += int(row[-1])
        found = [{"key": key, "count": n, "previous": p} for key, (n, p) in totals.items() if n or p]
        result[dimension] = sorted(found, key=lambda r: (-r["count"], -r["previous"], str(r["key"])))
    return result


def series(connection, filters: Filters, by: str, use_rollup: bool = True) -> list[tuple[str, str | None, int]]:
    """(bucket, key, count) over the period, ``by`` one of DIMENSIONS."""
    counts: dict[tuple, int] = defaultdict(int)
    live_from = filters.start
    upto = _rollup_end(filters, filters.start) if use_rollup else None
    if upto is not None:
        rollup.ensure(connection, filters.start, upto)
        column = getattr(DashboardDay, by)
        for day, key, n in connection.execute(
                select(DashboardDay.day, column, func.sum(DashboardDay.requests))
                .where(DashboardDay.day >= filters.start.date().isoformat(), DashboardDay.day < upto.date().isoformat(),
                       *_rollup_narrowing(filters)).group_by(DashboardDay.day, column)):
            counts[(_bucket_of(day, filters.unit), key or None)] += int(n)
        live_from = upto
    if live_from < filters.end:
        day = bucket(connection.dialect.name, filters.unit)
        column = getattr(Request, by)
        for label, key, n in connection.execute(select(day, column, func.count())
                                                .where(filters.where(start=live_from)).group_by(day, column)):
            counts[(label, key)] += int(n)
    return sorted(((label, key, n) for (label, key), n in counts.items()), key=lambda r: (r[0], str(r[1])))


def _rollup_end(filters: Filters, begin: datetime) -> datetime | None:
    """Where the roll-up stops serving [begin, end): None when it cannot serve any of it."""
    upto = min(rollup.settled_before(), filters.end)
    whole_days = all(t.astimezone(UTC).time() == time() for t in (begin, upto))
    return upto if whole_days and begin < upto else None


def _rollup_narrowing(filters: Filters) -> list:
    conditions = []
    if filters.district:
        conditions.append(DashboardDay.district == filters.district)
    if filters.department:
        conditions.append(DashboardDay.department == filters.department)
    return conditions


def _bucket_of(day: str, unit: str) -> str:
    value = date.fromisoformat(day)
    if unit == "week":
        value -= timedelta(days=value.weekday())
    elif unit == "month":
        value = value.replace(day=1)
    return value.isoformat()


def delays(connection, filters: Filters) -> tuple[dict, int, int]:
    """({(dimension, key): {"acknowledge": [p50, p90, n], "route": …, "resolve": …}}, rows read, step)."""
    dialect = connection.dialect.name
    query = select(
        Request.category.label("category"), Request.department.label("department"),
        seconds_between(dialect, Request.acknowledged_at, Request.created_at).label("acknowledge"),
        seconds_between(dialect, Request.routed_at, Request.created_at).label("route"),
        seconds_between(dialect, Request.resolved_at, Request.created_at).label("resolve"),
    ).where(filters.where(), Request.duplicate_of_id.is_(None))
    if dialect == "postgresql":
        return _delays_in_postgresql(connection, query.subquery())
    total = connection.scalar(select(func.count()).select_from(Request).where(filters.where())) or 0
    step = max(1, math.ceil(total / SAMPLE_LIMIT))
    if step > 1:
        query = query.where(Request.id % step == 0)
    by_pair: dict[tuple, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    read = 0
    for category, department, acknowledge, route, resolve in connection.execute(query):
        read += 1
        lists = by_pair[(category, department)]
        if acknowledge is not None:
            lists[0].append(float(acknowledge))
        if route is not None:
            lists[1].append(float(route))
        if resolve is not None:
            lists[2].append(float(resolve))
    groups: dict[tuple, tuple[list, list, list]] = defaultdict(lambda: ([], [], []))
    for (category, department), lists in by_pair.items():
        for group in (("all", None), ("category", category), ("department", department)):
            for target, values in zip(groups[group], lists, strict=True):
                target.extend(values)
    return {group: {name: _percentiles(values) for name, values in zip(STAGES, lists, strict=True) if values}
            for group, lists in groups.items()}, read, step


def _delays_in_postgresql(connection, durations) -> tuple[dict, int, int]:
    """The same figures with percentile_cont, exact and without moving the rows to Python."""
    columns = []
    for stage in STAGES:
        value = durations.c[stage]
        columns += [func.percentile_cont(0.5).within_group(value), func.percentile_cont(0.9).within_group(value),
                    func.count(value)]
    rows = connection.execute(
        select(durations.c.category, durations.c.department, func.grouping(durations.c.category),
               func.grouping(durations.c.department), func.count(), *columns)
        .select_from(durations)
        .group_by(text("GROUPING SETS ((), (category), (department))"))).all()
    found, read = {}, 0
    for category, department, no_category, no_department, count, *figures in rows:
        if no_category and no_department:
            group, read = ("all", None), int(count)
        else:
            group = ("department", department) if no_category else ("category", category)
        found[group] = {stage: (float(figures[3 * i]), float(figures[3 * i + 1]), int(figures[3 * i + 2]))
                        for i, stage in enumerate(STAGES) if figures[3 * i + 2]}
    return found, read, 1


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
    return sorted(found, key=lambda r: (-r["due"], r["key"] or ""))  # ties by name: the same order everywhere


def backlog(connection, filters: Filters, now: datetime) -> list[dict]:
    """Open requests by age band and department (whatever the period: the backlog is today's)."""
    band = case(*[(Request.created_at >= now - timedelta(days=days), literal(label))
                  for days, label in AGE_BANDS if days], else_=literal(AGE_BANDS[-1][1]))
    conditions = [Request.status.in_(OPEN_STATUSES), Request.created_at < now, *filters.narrowing()]
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


def recurring(connection, end: datetime, weeks: int = 8, cell_degrees: float = 0.001,
              filters: Filters | None = None) -> list[dict]:
    """Places (cells of ~100 m) where the same category comes back week after week.

    A cell is a hot spot when its category was reported there in at least 3 distinct weeks,
    5 times at least, and — when the category is reported in DENSE_CELLS cells or more — 6 times
    more than in its average cell (so that a dense city does not turn every corner into a hot
    spot). One statement, grouped in the database."""
    start = end - timedelta(weeks=weeks)
    conditions = [Request.created_at >= start, Request.created_at < end, Request.lat.is_not(None),
                  Request.lon.is_not(None), Request.duplicate_of_id.is_(None), *(filters.narrowing() if filters else [])]
    scale = 1 / cell_degrees
    x = cast(func.round(Request.lon * scale), Integer).label("x")
    y = cast(func.round(Request.lat * scale), Integer).label("y")
    # The week number by comparisons, not date arithmetic: the same on both databases, and cheap.
    week = sum((case((Request.created_at >= start + timedelta(weeks=i), 1), else_=0) for i in range(1, weeks)),
               literal(0))
    cells = (select(Request.category, x, y, func.count().label("n"), func.count(distinct(week)).label("w"),
                    func.max(Request.district).label("district"))
             .where(*conditions).group_by(Request.category, x, y).subquery())
    ranked = select(cells, func.sum(cells.c.n).over(partition_by=cells.c.category).label("total"),
                    func.count().over(partition_by=cells.c.category).label("occupied")).subquery()
    rows = connection.execute(select(ranked).where(
        ranked.c.n >= 5, ranked.c.w >= 3,
        or_(ranked.c.occupied < DENSE_CELLS, ranked.c.n * ranked.c.occupied >= 6 * ranked.c.total))).all()
    found = [{"category": r.category, "district": r.district, "weeks": int(r.w), "count": int(r.n),
              "lat": round(r.y * cell_degrees, 4), "lon": round(r.x * cell_degrees, 4)} for r in rows]
    return sorted(found, key=lambda c: (-c["weeks"], -c["count"], c["category"], c["lat"], c["lon"]))


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
    return sorted(found, key=lambda r: (-r["count"], r["key"] or ""))
