"""Dedup's candidate search before the write lock, on SQLite, and the catching up inside it.

SQLite lets one transaction write at a time. A pipeline batch holds that lock from its first
statement to its commit, and the candidate search was a third of the work done meanwhile,
though it only reads: the other worker, and the webhooks, waited for it. So a batch searches
before taking the lock (gateway/batch.py ``_prepare_batch``), and inside the lock only
catches up with the requests written since. The candidates it then scores are those the
search would have found inside the lock.

What was written since is known exactly. Triggers (migration 0018) log every request
inserted, deleted, or changed in a column the search reads, in ``request_changes``. One
writer at a time, so the log's ids follow the commits. Before the lock the batch reads the
log's last id (``seen``), then searches: in the worker's mirror of the requests it can find,
brought up to ``seen`` from the same log (dedup/mirror.py), or by the statement. Inside the
lock it reads the log's entries after ``seen``: every request they name is read again and
tested against the search's own condition (``Search.matches``); every other row found is
as it was read. Two cases search again inside the lock instead: a search cut by its LIMIT
(its rows are not all those matching, and one that no longer matches may hide another), and
a log pruned past ``seen``.

PostgreSQL writes concurrently, and its sequence's ids do not follow the commits: there the
search stays inside the transaction, where it always was.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from weakref import WeakKeyDictionary

from sqlalchemy import bindparam, func, select, text

from gateway.direct import InTransaction

from .config import DedupRules
from .index import Search, kept, report_of_row, search, searched_columns
from .mirror import Mirror
from .scoring import CrossDecision, Report, Scorer, decide

log = logging.getLogger(__name__)
TRIGGERS = ("requests_logged_insert", "requests_logged_update", "requests_logged_delete")
KEEP = 100_000  # log entries kept: far more than are written while a batch waits for the lock
PRUNE_EVERY = 10_000  # entries written between two prunings
_LOGGED: WeakKeyDictionary = WeakKeyDictionary()  # engine → whether its database logs


def logged(engine) -> bool:
    """Whether requests' changes are logged on this database: SQLite, with the triggers
    (a migration that rebuilds the requests table drops them: then the search stays inside
    the lock, and this says so once)."""
    if engine.dialect.name != "sqlite":
        return False
    known = _LOGGED.get(engine)  # asked once per engine
    if known is None:
        with engine.connect() as connection:
            found = set(connection.scalars(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")))
        known = _LOGGED[engine] = found >= set(TRIGGERS)
        if not known:
            log.warning("the triggers logging requests' changes are missing (%s): dedup searches inside the "
                        "write lock", ", ".join(sorted(set(TRIGGERS) - found)))
    return known


class Since:
    """The requests changed since ``seen`` (the log's last id before the searches), read
    inside the batch's transaction for its messages, each reading on from where the previous
    one stopped. ``rows``: request id → its row now (None: deleted)."""

    def __init__(self, seen: int):
        self.seen = seen
        self.last = seen
        self.rows: dict = {}
        self.whole = True  # False: the log was pruned past ``seen``

    def read(self, connection) -> bool:
        """Catch up; False when the log no longer holds every entry after ``seen``.
        ``connection``: SQLAlchemy's, or the batch's ``gateway.direct.InTransaction``."""
        if self.last == self.seen:  # the first read in this transaction
            first = connection.execute(_first()).scalar()
            self.whole = first is None or first <= self.seen + 1
        if self.whole:
            for row in connection.execute(_after(), {"after": self.last}).all():
                self.rows[row.request_id] = row if row.id is not None else None
                self.last = row.change_id
        return self.whole

    def forget(self) -> None:
        """A SAVEPOINT rolled back: what was read inside it may be gone with it (and its ids
        given again), so the next read starts from ``seen`` again."""
        self.last, self.rows = self.seen, {}

    def prune(self, connection) -> None:
        """Inside the batch's transaction: every PRUNE_EVERY entries, those older than the
        last KEEP."""
        if self.last // PRUNE_EVERY != self.seen // PRUNE_EVERY and self.last > KEEP:
            connection.execute(_prune(), {"upto": self.last - KEEP})


@dataclass
class Early:
    """One report's search, made before the write lock, with its rows made into Reports and
    scored against the report there too."""

    report: Report
    rules: DedupRules
    found: Search | None  # None: no usable place, nothing to search
    since: Since = field(repr=False)
    built: dict = field(default_factory=dict, repr=False)  # request id → its row as a Report
    scores: dict = field(default_factory=dict, repr=False)  # request id → its Score (None: not comparable)
    decided: CrossDecision | None = field(default=None, repr=False)  # made on the rows as they were read

    def decision(self, session, report: Report, rules: DedupRules, open_statuses) -> CrossDecision | None:
        """The decision the search leads to now, inside the lock, as if made there; None when
        it cannot be told from this search (another report, other rules, a search cut by its
        LIMIT, a log pruned past it): search again.

        When no request changed since is one it found, or one it would find now, the rows are
        those it read, and the decision is the one made on them before the lock. Otherwise
        the changed rows replace those read, and the scores worked out before the lock serve
        for the rows that did not change."""
        if report != self.report or rules is not self.rules or (self.found is not None and self.found.full):
            return None
        if self.found is None:
            return self.decided
        session.flush()  # the session's pending changes reach the log first
        if not self.since.read(InTransaction(session)):
            return None
        changed, found = self.since.rows, self.found
        if not any(i in found.rows or (row is not None and found.matches(row)) for i, row in changed.items()):
            return self.decided
        rows = {i: row for i, row in found.rows.items() if i not in changed}
        rows.update((i, row) for i, row in changed.items() if row is not None and found.matches(row))
        unchanged = {i: built for i, built in self.built.items() if i not in changed}
        return decide(report, kept(rows.values(), rules, open_statuses, unchanged), rules,
                      {i: score for i, score in self.scores.items() if i not in changed})


def before_lock(connection, mirror: Mirror | None = None, rules: DedupRules | None = None) -> Since:
    """Read before the searches: the log's last id (``mirror``: the mirror brought up to it,
    under its lock)."""
    if mirror is not None:
        return Since(mirror.catch_up(connection, rules))
    return Since(connection.scalar(_last()) or 0)


def search_early(connection, report: Report, rules: DedupRules, since: Since, open_statuses,
                 mirror: Mirror | None = None) -> Early:
    """``mirror``: searched in memory (dedup/mirror.py), by the statement when it cannot be."""
    found = mirror.search(report, rules) if mirror is not None else False
    early = Early(report, rules, search(connection, report, rules) if found is False else found, since)
    if early.found is None:
        early.decided = decide(report, [], rules)
    elif not early.found.full:  # what a full search found is not used
        scorer = Scorer(report, rules, rules.comparable_set(report.category))
        for i, row in early.found.rows.items():
            if row.status not in open_statuses:  # never a candidate while it stays so (a change is read again)
                continue
            early.built[i] = built = mirror.report(row) if mirror is not None else report_of_row(row)
            early.scores[i] = scorer(built)
        early.decided = decide(report, kept(early.found.rows.values(), rules, open_statuses, early.built), rules,
                               early.scores)
    return early


@lru_cache(maxsize=1)
def _table():
    from gateway.models import RequestChange

    return RequestChange.__table__


@lru_cache(maxsize=1)
def _last():
    return select(func.max(_table().c.id))


@lru_cache(maxsize=1)
def _first():
    return select(func.min(_table().c.id))


@lru_cache(maxsize=1)
def _after():
    """Each entry after ``after``, with its request's row now (the search's columns), in order."""
    from gateway.models import Request

    changes = _table()
    return (select(changes.c.id.label("change_id"), changes.c.request_id, *searched_columns())
            .select_from(changes.outerjoin(Request.__table__, Request.id == changes.c.request_id))
            .where(changes.c.id > bindparam("after")).order_by(changes.c.id))


@lru_cache(maxsize=1)
def _prune():
    changes = _table()
    return changes.delete().where(changes.c.id <= bindparam("upto"))
