"""SQLite: the webhooks of one process waiting for the writer's turn are stored together, in one
transaction and one durable commit (a group commit).

With ``synchronous=FULL`` a webhook's commit writes its pages to the log and waits for the
disk (fsync) while holding the write lock, and every other webhook waits behind it. Taking
that commit away took 28–32 % off the CPU of a Telegram webhook (docs/benchmarks.md §1,
round 11): it is the largest part of what a webhook costs beyond the bare endpoint's.

The writes of one process already wait for the writer's turn one behind the other, on the
process's lock (gateway/turns.py ``IntakeTurn``). Here each write first puts its row on the
process's list, then waits for that lock. Whoever has it takes every row on the list, its own
and those of the threads queued behind it, takes the writer's turn, inserts them in one
transaction and commits once; then each of those threads finds its row stored, and answers.
Nobody answers before the commit that holds its row: an acknowledged message is as durable as
when each committed its own.

A row that fails (a value the database refuses) must not fail the others: the group's
transaction is then rolled back and each row is written again in a transaction of its own.
The INSERT is ON CONFLICT DO NOTHING on (channel, provider id), so a provider's retry in the
same group as its first delivery is stored once, as it is one after the other.

PostgreSQL commits concurrently and groups its own commits: no group there.

The log these commits write is copied into the database by whoever commits past
CHECKPOINT_FRAMES (gateway/turns.py ``checkpoint``): the pipeline's batches, the scheduler's
passes, and here, after every ``CHECK_EVERY``-th group, the thread that wrote it, once it is
committed and its turn given back. Without it, while the webhooks alone wrote (no pipeline
worker, no scheduler), the log grew without end: 670 MB in one benchmark's run.
"""

from __future__ import annotations

import fcntl
import logging
import threading

from .turns import WAIT_SECONDS, Turns, _writer_turn

log = logging.getLogger(__name__)

CHECK_EVERY = 64  # groups written between two looks at the log's length (a read of 100 bytes)


class _Row:
    __slots__ = ("statement", "params", "written", "new_id", "error", "done")

    def __init__(self, statement, params: dict):
        self.statement, self.params = statement, params
        self.written = False  # committed (new_id: None when the row was already there)
        self.new_id: int | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()


class IntakeGroup:
    """The rows of one process's webhooks waiting to be written (``insert``)."""

    def __init__(self, turns: Turns, checkpoint=None):
        self.turns = turns
        self._waiting: list[_Row] = []
        self._list_lock = threading.Lock()
        self._checkpoint = checkpoint  # copies the log once it is long (``Turns.checkpoint`` on the engine)
        self._groups = 0  # written by this process (counted under the process's lock)

    def insert(self, connection, statement, params: dict) -> int | None:
        """``statement`` (an INSERT … RETURNING id) run with ``params``, committed durably when
        this returns, perhaps by another thread of this process in the same transaction as its
        own rows: the id it returned (None: the row was already there)."""
        files = self.turns.waiting()
        if files is None:  # the turns' files cannot be opened: SQLite's lock alone, the caller commits
            return connection.execute(statement, params).scalar()
        row, look = _Row(statement, params), False
        try:
            with self._list_lock:
                self._waiting.append(row)
            queued = self.turns.writing.acquire(timeout=WAIT_SECONDS)  # not had: written all the same
            try:
                if not row.done.is_set() and self._write(connection, files.writer):
                    self._groups += 1
                    look = self._groups % CHECK_EVERY == 0
            finally:
                if queued:
                    self.turns.writing.release()
            row.done.wait()  # taken by a write that did not wait for the process's lock
        finally:
            self.turns.done_waiting(files)
        if look and self._checkpoint is not None:
            self._copy_log()
        if row.error is not None:
            raise row.error
        return row.new_id

    def _copy_log(self) -> None:
        """The log copied if long, holding no turn: the rows are committed, and SQLite's
        checkpoint lets writers go on meanwhile. A failure is the next look's to mend."""
        try:
            self._checkpoint()
        except Exception:
            log.warning("intake: the log not copied this time", exc_info=True)

    def _write(self, connection, writer: int) -> bool:
        """The writer's turn taken, then every row waiting inserted in one transaction (those
        listed while the turn was awaited too); each row's thread told once it is committed,
        or of its error. False: no row was left to write."""
        _writer_turn(writer)
        try:
            with self._list_lock:
                group, self._waiting = self._waiting, []
            if group:
                _insert_all(connection, group)
            return bool(group)
        finally:
            fcntl.flock(writer, fcntl.LOCK_UN)


def _insert_all(connection, group: list[_Row]) -> None:
    try:
        try:
            ids = [connection.execute(row.statement, row.params).scalar() for row in group]
            connection.commit()
        except Exception:
            connection.rollback()
            if len(group) == 1:
                raise
            log.warning("intake: a group of %s webhooks failed; each written alone", len(group), exc_info=True)
            for row in group:
                _write_alone(connection, row)
        else:
            for row, new_id in zip(group, ids, strict=True):
                row.written, row.new_id = True, new_id
    except BaseException as exc:  # every row's thread answers with it (a 5xx: the provider retries)
        for row in group:
            if not row.written and row.error is None:
                row.error = exc
        raise
    finally:
        for row in group:
            row.done.set()


def _write_alone(connection, row: _Row) -> None:
    try:
        new_id = connection.execute(row.statement, row.params).scalar()
        connection.commit()
        row.written, row.new_id = True, new_id
    except Exception as exc:
        connection.rollback()
        row.error = exc
