"""Webhooks first: on SQLite, the pipeline's batches give way to the messages arriving.

SQLite has one write lock, and it does not serve its waiters in order. A connection that finds
it taken sleeps in SQLite's busy handler (1, 2, 5 … 25, then 50 and 100 ms) and tries again;
a pipeline worker that has just committed a batch takes it again at once for the next one.
Working through a backlog, a worker holds the lock most of the time, so a webhook waiting
to store its message loses that race again and again: with one pipeline worker busy, SMS
webhooks offered at 200/s got through at 80–120/s, their p99 over 2 s (docs/benchmarks.md,
section 1, "While the pipeline works through a backlog").

Two lock files beside the database (``<database>-intake.lock`` and ``<database>-writer.lock``)
give the turns, with ``flock``: the kernel releases them when a process dies, even by kill -9.

- An intake write (``intake``) holds the first, shared, from the moment it wants to write to
  the moment it has committed; it takes the second, exclusive, around its statements.
- A pipeline batch (``batch``) first waits until no intake write holds the first, then takes
  the second for its whole transaction.

So a message waits at most for the one batch already under way, and is stored as soon as it
ends; the pipeline goes on as soon as the messages waiting are stored. It is never starved:
after ``YIELD_SECONDS`` of messages arriving without a pause it takes its turn anyway (the
messages are then stored after that batch: accepting them comes first, processing catches up).

The files only say whose turn it is: every write still takes SQLite's own lock, and writers
that take no turn (an agent's page, a delivery's outcome, the scheduler) wait there as before.
A turn not had within ``WAIT_SECONDS`` (a process stopped while holding it) is given up and
the write goes on under SQLite's lock alone. PostgreSQL has no single write lock: no turns.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from contextlib import contextmanager

from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

YIELD_SECONDS = 0.25  # the longest a batch waits for the messages arriving to be stored
WAIT_SECONDS = 5.0  # the longest anyone waits for a turn before writing under SQLite's lock alone
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0002, 0.002  # between two looks at a lock held by another


class Turns:
    """The turns of one SQLite database file; does nothing for any other database."""

    def __init__(self, database_path: str | None):
        self.paths = (f"{database_path}-intake.lock", f"{database_path}-writer.lock") if database_path else None

    @classmethod
    def for_url(cls, url: str) -> Turns:
        parsed = make_url(url)
        path = parsed.database if parsed.get_backend_name() == "sqlite" else None
        if not path or path == ":memory:" or path.startswith("file:") or parsed.query.get("mode") == "memory":
            return cls(None)
        return cls(os.path.abspath(path))

    @property
    def active(self) -> bool:
        return self.paths is not None

    @contextmanager
    def intake(self):
        """Around a webhook's write, its commit included. Yields an ``IntakeTurn``: from here
        the pipeline lets this write go first; its ``write()``, called before the first
        INSERT, waits for the batch under way, if any."""
        files = self._open()
        if files is None:
            yield IntakeTurn(None)
            return
        waiting, writer = files
        try:
            _take(waiting, fcntl.LOCK_SH, WAIT_SECONDS)  # a batch only looks at it (exclusive, released at once)
            yield IntakeTurn(writer)
        finally:
            os.close(writer)  # closing releases its lock
            os.close(waiting)

    @contextmanager
    def batch(self):
        """Around a pipeline batch's transaction, its commit included."""
        files = self._open()
        if files is None:
            yield
            return
        waiting, writer = files
        try:
            _batch_turn(waiting, writer)
            yield
        finally:
            os.close(writer)
            os.close(waiting)

    def _open(self) -> tuple[int, int] | None:
        """Both files, opened for this turn alone: flock locks belong to an open file, so two
        threads of one process (the web server's, the in-process jobs') take turns too."""
        if self.paths is None:
            return None
        opened: list[int] = []
        try:
            for path in self.paths:
                opened.append(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o660))
        except OSError as exc:
            for fd in opened:
                os.close(fd)
            log.warning("writers' turns off for this process: %s cannot be opened (%s); SQLite's own lock only",
                        exc.filename, exc.strerror)
            self.paths = None
            return None
        return opened[0], opened[1]


class IntakeTurn:
    """An intake write's turn: ``write()`` before its first statement that writes (the reads
    before it need no turn); once had, kept until the write is committed."""

    def __init__(self, writer: int | None):
        self.writer, self.had = writer, writer is None

    def write(self) -> None:
        if not self.had:
            _writer_turn(self.writer)
            self.had = True


def _batch_turn(waiting: int, writer: int) -> None:
    """The writer's turn, kept only when no intake write is waiting: a message may have come
    while the batch waited for another batch. Given back to the messages waiting, for at most
    YIELD_SECONDS in all (the time spent waiting for other batches does not count)."""
    yielded = 0.0
    while True:
        _writer_turn(writer)
        if yielded >= YIELD_SECONDS or _take(waiting, fcntl.LOCK_EX, 0):
            fcntl.flock(waiting, fcntl.LOCK_UN)  # (not held when the batch stopped giving way: harmless)
            return
        fcntl.flock(writer, fcntl.LOCK_UN)  # messages waiting: their turn first
        started = time.monotonic()
        _take(waiting, fcntl.LOCK_EX, YIELD_SECONDS - yielded)
        fcntl.flock(waiting, fcntl.LOCK_UN)
        yielded += time.monotonic() - started


def _writer_turn(writer: int) -> None:
    if not _take(writer, fcntl.LOCK_EX, WAIT_SECONDS):
        log.warning("no writer's turn within %.0f s (a process stopped while holding it?): writing under "
                    "SQLite's own lock alone", WAIT_SECONDS)


def _take(fd: int, kind: int, patience: float) -> bool:
    """The lock, looked at again after short pauses (0.2 ms, growing to 2 ms) for at most
    ``patience`` seconds; False when it was not had by then."""
    deadline, pause = time.monotonic() + patience, _FIRST_PAUSE
    while True:
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
