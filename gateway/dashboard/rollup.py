"""Requests per day × channel × category × department × district, for settled days.

A day is settled SETTLE_DAYS after it ends: by then its requests have their category,
department and district. Its counts are computed once, the first time a dashboard needs
them (one grouped INSERT … SELECT per run of missing days), and read from this small table
afterwards, so a year-long period does not read a million requests. A re-categorization
made later is picked up by ``gateway dashboards refresh --since DAY``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import delete, func, insert, literal, select
from sqlalchemy.exc import IntegrityError

from ..models import DashboardDay, DashboardDayBuilt, Request, utcnow

SETTLE_DAYS = 3
DIMENSIONS = ("channel", "category", "department", "district")


def settled_before(now: datetime | None = None) -> datetime:
    """Midnight UTC starting the first day that is not settled yet."""
    today = (now or utcnow()).astimezone(UTC).date()
    return datetime.combine(today - timedelta(days=SETTLE_DAYS), datetime.min.time(), UTC)


def ensure(connection, start: datetime, end: datetime) -> None:
    """Build the missing days of [start, end) (whole UTC days, all settled). Commits."""
    first, last = start.date(), (end - timedelta(seconds=1)).date()
    if last < first:
        return
    built = set(connection.scalars(select(DashboardDayBuilt.day).where(
        DashboardDayBuilt.day >= first.isoformat(), DashboardDayBuilt.day <= last.isoformat())))
    missing = _runs([d for d in _days(first, last) if d.isoformat() not in built])
    if not missing:
        return
    try:
        for run_first, run_last in missing:
            _build(connection, run_first, run_last)
        connection.commit()
    except IntegrityError:  # another dashboard built them at the same moment: its rows serve
        connection.rollback()


def refresh(connection, since: date, until: date | None = None) -> int:
    """Forget the days from ``since`` (to ``until``) so that they are built again. Commits."""
    conditions = [DashboardDay.day >= since.isoformat()]
    markers = [DashboardDayBuilt.day >= since.isoformat()]
    if until:
        conditions.append(DashboardDay.day <= until.isoformat())
        markers.append(DashboardDayBuilt.day <= until.isoformat())
    connection.execute(delete(DashboardDay).where(*conditions))
    forgotten = connection.execute(delete(DashboardDayBuilt).where(*markers)).rowcount
    connection.commit()
    return forgotten


def _days(first: date, last: date):
    while first <= last:
        yield first
        first += timedelta(days=1)


def _runs(days: list[date]) -> list[tuple[date, date]]:
    runs: list[list[date]] = []
    for day in days:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [(a, b) for a, b in runs]


def _build(connection, first: date, last: date) -> None:
    from .queries import bucket

    day = bucket(connection.dialect.name, "day").label("day")
    columns = [func.coalesce(getattr(Request, d), literal("")).label(d) for d in DIMENSIONS]
    start = datetime.combine(first, datetime.min.time(), UTC)
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    grouped = (select(day, *columns, func.count().label("requests"))
               .where(Request.created_at >= start, Request.created_at < end).group_by(day, *columns))
    connection.execute(insert(DashboardDay).from_select(["day", *DIMENSIONS, "requests"], grouped))
    now = utcnow()
    connection.execute(insert(DashboardDayBuilt), [{"day": d.isoformat(), "built_at": now} for d in _days(first, last)])
