"""On SQLite, each pipeline worker holds in memory the requests dedup's search can find.

A batch searches before taking the write lock (dedup/early.py), and that search was still
the largest step of the pipeline: SQLite's own work for an uncategorized report's sixteen
index ranges, made again for every message. The rows it reads change little from one batch
to the next, and what changed is known exactly: the log of requests' changes
(``request_changes``, written by triggers) that the catching up inside the lock reads too.

So a worker keeps a ``Mirror`` of the requests table as far as the search reads it: the
searched columns of every request filed within the longest dedup window (and a day), by
(category, grid cell) and (category, street key), as the two indexes of the statement. Before
its searches, a batch brings the mirror up to date in its read transaction: it applies the
log's entries after the last one applied, reading again each request they name, and the
mirror is then the table as that transaction sees it. The batch's Since starts from the same
entry, so what is written between the searches and the lock is caught up inside the lock
exactly as before.

A search in the mirror reads the rows filed under the keys each part of the statement reads
(category and cell, category and street key) and keeps those its other conditions accept (the
window; for a cell, the radius' bounding box): it finds the same rows. A search cut by
the statement's LIMIT is made again inside the lock, as before: the mirror finds every row
matching, so it is "full" exactly when the statement would be. A report older than what the
mirror holds (its window reaches before the mirror's horizon) is searched by the statement.

The mirror is loaded whole again when it cannot be caught up: the log pruned past its last
entry, the log recreated, or the rules' longest window grown. A request held costs about
1 KB (most of it its description); a city filing 1 M requests a year holds about 85,000 (the
30-day windows), some 100 MB per pipeline worker.
"""

from __future__ import annotations

import sys
import threading
from datetime import timedelta
from functools import lru_cache
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, func, or_, select

from .config import DedupRules
from .index import Search, plan, report_of_row, searched_columns
from .scoring import Report

SLACK = timedelta(days=1)  # reports this much older than the newest request are still searched here
_MIRRORS: WeakKeyDictionary = WeakKeyDictionary()  # engine → its Mirror
_MIRRORS_LOCK = threading.Lock()
_NONE: dict = {}


def mirror_of(engine) -> Mirror:
    """The mirror of this engine's database, in this process."""
    with _MIRRORS_LOCK:
        mirror = _MIRRORS.get(engine)
        if mirror is None:
            mirror = _MIRRORS[engine] = Mirror()
        return mirror


def _span(rules: DedupRules) -> timedelta:
    """How far back the searches reach: the longest window of any category, and a day."""
    longest = max([rules.default.window_days] + [reach.window_days for reach in rules.categories.values()])
    return timedelta(days=longest) + SLACK


class Held:
    """A request as the mirror holds it: the searched columns (``searched_columns``), read
    as a row's attributes; the words many requests repeat (category, language, priority,
    status) shared between them."""

    __slots__ = ("id", "code", "category", "created_at", "description", "lat", "lon", "address", "language",
                 "priority", "status", "dedup_cell", "dedup_street")
    _SHARED = ("category", "language", "priority", "status")

    def __init__(self, row):
        for name in self.__slots__:
            setattr(self, name, getattr(row, name))
        for name in self._SHARED:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, sys.intern(value))


class Mirror:
    """The requests the candidate search can find, by the keys it reads. Used under ``lock``:
    a batch holds it from its catching up to its last search."""

    def __init__(self):
        self.lock = threading.Lock()
        self._clear(timedelta(0))

    def _clear(self, span: timedelta) -> None:
        self.last: int | None = None  # the log's last entry applied (None: not loaded)
        self.last_request: int | None = None  # the request that entry named
        self.span = span
        self.horizon = None  # requests filed before it are not held (None: all are)
        self.newest = None  # the latest created_at held
        self.rows: dict = {}  # request id → its row (the searched columns)
        self.cells: dict = {}  # (category, cell) → {request id: row}
        self.streets: dict = {}  # (category, street key) → {request id: row}
        self.reports: dict = {}  # request id → its row as a Report, made once

    def catch_up(self, connection, rules: DedupRules) -> int:
        """Bring the mirror to what ``connection``'s transaction sees; returns the log's last
        entry applied, from which the batch's catching up inside the lock goes on."""
        span = _span(rules)
        try:
            if self.last is None or span > self.span or not self._apply_log(connection):
                self._load(connection, span)
        except BaseException:
            self._clear(span)  # half caught up: loaded whole next time
            raise
        return self.last

    def search(self, report: Report, rules: DedupRules) -> Search | None | bool:
        """The rows the candidate statement would find for ``report`` in the mirror's
        database; None: no usable place; False: the report's window reaches before what the
        mirror holds (run the statement)."""
        planned = plan(report, rules)
        if planned is None:
            return None
        found = planned[0]
        if self.horizon is not None and any(since < self.horizon for _, since, *_ in found.groups):
            return False
        rows = found.rows
        for named, since, cells, box, streets in found.groups:  # each part of the statement, as it reads it
            south, north, west, east = box or (0.0, 0.0, 0.0, 0.0)
            for category in (None,) if named is None else named:
                for cell in cells or ():
                    for request_id, row in self.cells.get((category, cell), _NONE).items():
                        if request_id not in rows and row.created_at >= since and row.lat is not None \
                                and row.lon is not None and south <= row.lat <= north and west <= row.lon <= east:
                            rows[request_id] = row
                for street in streets or ():
                    for request_id, row in self.streets.get((category, street), _NONE).items():
                        if request_id not in rows and row.created_at >= since:
                            rows[request_id] = row
        return found

    def report(self, row) -> Report:
        """``row`` as a Report, made once for as long as the mirror holds that very row."""
        made = self.reports.get(row.id)
        if made is None:
            made = report_of_row(row)
            if self.rows.get(row.id) is row:
                self.reports[row.id] = made
        return made

    def _apply_log(self, connection) -> bool:
        """Apply the log's entries after ``last``; False when it no longer holds them all.
        The entries are read first, then the log's bounds: a pruning or a log begun again
        before the read is seen after it (each statement reads the database as it is then)."""
        changed: dict = {}
        entry = None
        for entry in connection.execute(_after(), {"after": self.last}):
            changed[entry.request_id] = entry if entry.id is not None else None
        first, named = connection.execute(_bounds(), {"last": self.last}).one()
        if first is None:  # nothing logged (yet, or any more): unchanged only if nothing was ever applied
            return self.last == 0
        if first > self.last + 1 or (first <= self.last and named != self.last_request):
            return False  # pruned past it, or a log begun again
        for request_id, row in changed.items():
            self._drop(request_id)
            if row is not None:
                self._hold(row)
        if entry is not None:
            self.last, self.last_request = entry.change_id, entry.request_id
        self._advance()
        return True

    def _load(self, connection, span: timedelta) -> None:
        self._clear(span)
        self.last, self.last_request = connection.execute(_latest()).one_or_none() or (0, None)
        newest = connection.scalar(_newest())
        self.horizon = None if newest is None else newest - span
        if newest is not None:
            for row in connection.execute(_held(), {"since": self.horizon}):
                self._hold(row)

    def _hold(self, row) -> None:
        if self.horizon is not None and row.created_at < self.horizon:
            return
        if row.dedup_cell is None and row.dedup_street is None:
            return  # never found by a search
        row = self.rows[row.id] = Held(row)
        if row.dedup_cell is not None:
            self.cells.setdefault((row.category, row.dedup_cell), {})[row.id] = row
        if row.dedup_street is not None:
            self.streets.setdefault((row.category, row.dedup_street), {})[row.id] = row
        if self.newest is None or row.created_at > self.newest:
            self.newest = row.created_at

    def _drop(self, request_id: int) -> None:
        row = self.rows.pop(request_id, None)
        if row is None:
            return
        self.reports.pop(request_id, None)
        for place, key in ((self.cells, row.dedup_cell), (self.streets, row.dedup_street)):
            if key is not None:
                rows = place[(row.category, key)]
                del rows[request_id]
                if not rows:
                    del place[(row.category, key)]

    def _advance(self) -> None:
        """Once the newest request is a day past the horizon's reach, let the rows older than
        the searches reach go (the first time on a mirror loaded empty, which held every
        request until then)."""
        if self.newest is None or (self.horizon is not None and self.newest - self.span < self.horizon + SLACK):
            return
        self.horizon = self.newest - self.span
        for request_id in [i for i, row in self.rows.items() if row.created_at < self.horizon]:
            self._drop(request_id)


@lru_cache(maxsize=1)
def _tables():
    from gateway.models import Request, RequestChange

    return Request.__table__, RequestChange.__table__


@lru_cache(maxsize=1)
def _bounds():
    """The log's first entry, and the request the entry ``last`` names (it still names the
    same one, unless the log was begun again)."""
    changes = _tables()[1]
    named = select(changes.c.request_id).where(changes.c.id == bindparam("last")).scalar_subquery()
    return select(func.min(changes.c.id), named)


@lru_cache(maxsize=1)
def _latest():
    changes = _tables()[1]
    return select(changes.c.id, changes.c.request_id).order_by(changes.c.id.desc()).limit(1)


@lru_cache(maxsize=1)
def _newest():
    return select(func.max(_tables()[0].c.created_at))


@lru_cache(maxsize=1)
def _held():
    requests = _tables()[0]
    return select(*searched_columns()).where(requests.c.created_at >= bindparam("since"),
                                             or_(requests.c.dedup_cell.is_not(None),
                                                 requests.c.dedup_street.is_not(None)))


@lru_cache(maxsize=1)
def _after():
    from .early import _after as after

    return after()
