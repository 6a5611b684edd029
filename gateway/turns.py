"""Webhooks first: on SQLite, the pipeline's batches give way to the messages arriving.

SQLite has one write lock, and it does not serve its waiters in order. A connection that finds
it taken sleeps in SQLite's busy handler (1, 2, 5 … 25, then 50 and 100 ms) and tries again;
a pipeline worker that has just committed a batch takes it again at once for the next one.
Working through a backlog, a worker holds the lock most of the time, so a webhook waiting
to store its message loses that race again and again: with one pipeline worker busy, SMS
webhooks offered at 200/s got through at 46–120/s, their p99 2–7 s (docs/benchmarks.md,
section 1, round 7).

Two lock files beside the database (``<database>-intake.lock`` and ``<database>-writer.lock``)
give the turns, with ``flock``: the kernel releases them when a process dies, even by kill -9.

- An intake write (``intake``) holds the first, shared, from the moment it is ready to write
  (its reads done) to the moment it has committed; and the second, exclusive, meanwhile.
- A pipeline batch (``batch``) first waits until no intake write holds the first, then takes
  the second for its whole transaction.

So a message waits at most for the one batch already under way, and is stored as soon as it
ends; the pipeline goes on as soon as the messages waiting are stored. While messages keep
arriving (one waited for a batch within ``ARRIVING_SECONDS``), batches are short
(``Turns.batch_size``: about ``HOLD_WHILE_ARRIVING`` of write lock each, from the time the
last batches took per message), so that wait is short too; then whole again. The pipeline is never
starved: after ``YIELD_SECONDS`` of messages arriving without a pause it takes its turn
anyway (those messages are then stored right after that batch).

A commit that makes the write-ahead log long also copies it into the database (SQLite's
automatic checkpoint, at 1,000 pages not yet copied), which on a busy disk took up to 3 s,
all of it inside the writer's turn of whoever committed: everyone waited. With turns, no
connection does that in its commit (``wal_autocheckpoint=0``, gateway/db.py);
``checkpoint`` does it (at ``CHECKPOINT_FRAMES``) after a pipeline batch, on each pass of
the scheduler and after every 64th group of webhooks (gateway/grouped.py), holding no turn:
SQLite's checkpoint lets writers go on meanwhile.

A citizen's submission on the API, the web form or the counter is stored, then made into a
request before the answer: it is arriving for both writes (``arriving``), so no batch begins
between them; else the citizen waited for batch after batch (up to 2.6 s).

The scheduler's passes over many requests (SLA marks, closing) write in short transactions,
each a batch's turn (gateway/db.py ``in_short_transactions``): in one transaction, the day
after a storm, a pass held SQLite's lock for 2 s while every webhook waited behind it.

The files only say whose turn it is: every write still takes SQLite's own lock, and writers
that take no turn (an agent's page, a delivery's outcome) wait there as before: their
transactions are short.
A turn not had within ``WAIT_SECONDS`` (a process stopped while holding it) is given up and
the write goes on under SQLite's lock alone. PostgreSQL has no single write lock: no turns.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import time
from contextlib import contextmanager

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

YIELD_SECONDS = 0.1  # the longest a batch waits for the messages arriving to be stored
HOLD_WHILE_ARRIVING = 0.025  # seconds: about how long a batch holds the write lock while messages arrive
ARRIVING_SECONDS = 1.0  # messages are arriving when one waited for a batch this recently
# Pages of log not yet copied at which it is copied (SQLite's automatic checkpoint: 1,000). A
# page written again before the copy is copied once: a pipeline batch of 20 writes ~250 pages
# of log, and copying every 10,000 took a third of the CPU that copying every 1,000 did
# (docs/benchmarks.md, section 2, round 13). The log file is then ~40 MB.
CHECKPOINT_FRAMES = 10_000
WAIT_SECONDS = 5.0  # the longest anyone waits for a turn before writing under SQLite's lock alone
# Between two looks at a lock held by another: one thread per process looks (IntakeTurn), so
# the pauses can be short, and a turn given back is taken again within 0.2 ms.
_FIRST_PAUSE, _LONGEST_PAUSE = 0.0001, 0.0002


_WAL_INDEX_VERSION = 3007000
_INDEX_DESCRIPTORS: dict[str, tuple[int, int]] = {}  # -shm path → (descriptor, inode): opened once, closed with the engine
_INDEX_USERS: dict[str, int] = {}  # -shm path → this process's Turns that looked there and are not closed
_INDEX_DESCRIPTORS_LOCK = threading.Lock()


def _index_descriptor(index_path: str) -> int:
    """This process's read-only descriptor of the wal-index file, opened at the first look and
    kept (a fork shares it: reads give the offset, so they do not move one another). A file
    made again at the same path (a new database) is opened again; the descriptor of the old
    one is left open, as closing it could drop locks still held there."""
    inode = os.stat(index_path).st_ino
    with _INDEX_DESCRIPTORS_LOCK:
        kept = _INDEX_DESCRIPTORS.get(index_path)
        if kept is None or kept[1] != inode:
            descriptor = os.open(index_path, os.O_RDONLY | os.O_CLOEXEC)
            kept = _INDEX_DESCRIPTORS[index_path] = (descriptor, os.fstat(descriptor).st_ino)
        return kept[0]


def _frames_not_copied(index_path: str) -> int | None:
    """How many of the log's pages are not yet copied into the database, from the header of
    SQLite's wal-index (the ``-shm`` file; https://www.sqlite.org/walformat.html: its version
    at byte 0, ``mxFrame`` at 16, ``nBackfill`` at 96, in the machine's byte order).

    The log file's length cannot say it: SQLite writes the log again from its start once it
    is copied, and never shortens the file, so once it had been long it looked long after
    every batch, and each batch paid for a checkpoint. Read without SQLite's locks, a value
    may be a moment old: it only says when to copy, and a later batch looks again.

    The file is read through a descriptor this process opens once and keeps until its
    engine is disposed of (``_index_descriptor``, ``Turns.close``): SQLite's locks on it are
    POSIX locks, and closing any descriptor of the file drops all of the process's locks on
    it, those its connections hold while they read or write too. A look that opened and
    closed it let another process empty the log under a reader, or write beside a writer,
    and corrupted a database."""
    try:
        header = os.pread(_index_descriptor(index_path), 100, 0)
    except OSError:
        return None
    if len(header) < 100 or struct.unpack_from("=I", header, 0)[0] != _WAL_INDEX_VERSION:
        return None
    last_frame, copied = struct.unpack_from("=I", header, 16)[0], struct.unpack_from("=I", header, 96)[0]
    return max(0, last_frame - copied)


class Turns:
    """The turns of one SQLite database file; does nothing for any other database."""

    def __init__(self, database_path: str | None):
        self.paths = (f"{database_path}-intake.lock", f"{database_path}-writer.lock") if database_path else None
        self.log_path = f"{database_path}-wal" if database_path else None
        self.index_path = f"{database_path}-shm" if database_path else None
        self.waited_at = -ARRIVING_SECONDS  # when a message last waited for one of this process's batches
        self.per_message = 0.0  # seconds of write lock per message in this process's batches (moving average)
        self.writing = threading.Lock()  # this process's intake writes wait here, one looks at the writer's file
        self._intake: IntakeFiles | None = None  # this process's intake writes' files (``waiting``)
        self.group = None  # SQLite: this process's single writes, committed together (gateway/grouped.py)
        self._waiters_lock = threading.Lock()
        self._looked = False  # counted among the users of the log index's descriptor (``checkpoint``)

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
        """Around a webhook's write, its commit included. Yields an ``IntakeTurn``, whose
        ``write()``, called before the first INSERT (the reads before it need no turn), says
        this write is waiting, so the pipeline lets it go first, and waits for the batch
        under way, if any."""
        turn = IntakeTurn(self if self.paths is not None else None)
        try:
            yield turn
        finally:
            turn.end()

    def close(self) -> None:
        """The intake writes' files closed (the database's engine disposed of), by the last of
        the writes on their way if any; the next write opens them again. The log index's
        descriptor too, once no other Turns of this process on that database is open: this
        engine's connections are closed, but another engine's may hold locks there (the
        gateway disposes of its engine only when it stops; the tests, after each test)."""
        with self._waiters_lock:
            files, self._intake = self._intake, None
            if files is not None and files.pid == os.getpid():
                files.retired = True
                if not files.waiters:
                    files.close()
        kept = None
        with _INDEX_DESCRIPTORS_LOCK:
            if self._looked:
                self._looked = False
                left = _INDEX_USERS.get(self.index_path, 1) - 1
                if left:
                    _INDEX_USERS[self.index_path] = left
                else:
                    _INDEX_USERS.pop(self.index_path, None)
                    kept = _INDEX_DESCRIPTORS.pop(self.index_path, None)
        if kept is not None:
            os.close(kept[0])

    @contextmanager
    def arriving(self):
        """Around a citizen's submission stored then made into a request before the answer (the
        API, the web form, the counter): a message is on its way in for the whole block, so no
        batch begins between the two writes (for at most ``YIELD_SECONDS``, as for webhooks).
        Each write still takes its own turn (``intake``)."""
        with self._opened() as files:
            if files:
                _take(files[0], fcntl.LOCK_SH, WAIT_SECONDS)
            yield

    def checkpoint(self, engine) -> None:
        """The write-ahead log copied into the database once CHECKPOINT_FRAMES of its pages
        are not yet (PASSIVE: no lock is waited for, writers go on meanwhile); called holding
        no turn."""
        if self.index_path is None:
            return
        if not self._looked:
            with _INDEX_DESCRIPTORS_LOCK:
                if not self._looked:
                    _INDEX_USERS[self.index_path] = _INDEX_USERS.get(self.index_path, 0) + 1
                    self._looked = True
        waiting = _frames_not_copied(self.index_path)
        if waiting is None:  # no log (yet), or an index this SQLite does not write
            return
        if waiting < CHECKPOINT_FRAMES:
            return
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except OperationalError as exc:  # the next batch tries again
            log.warning("checkpoint of %s not done: %s", self.log_path, exc)

    def batch_size(self, size: int) -> int:
        """How many messages the next batch takes, ``size`` at most: while messages are
        arriving, as many as hold the write lock about HOLD_WHILE_ARRIVING (the last batches'
        time per message), so that a message waits for a short batch, not a long one."""
        if time.monotonic() - self.waited_at >= ARRIVING_SECONDS or self.per_message <= 0:
            return size
        return max(1, min(size, int(HOLD_WHILE_ARRIVING / self.per_message)))

    @contextmanager
    def batch(self):
        """Around a background writer's transaction (a pipeline batch; a short transaction of
        the scheduler's), its commit included. Yields a ``BatchTurn`` a pipeline batch tells
        how many messages it took (``batch_size`` learns from it)."""
        with self._opened() as files:
            if files is None:
                yield BatchTurn()
                return
            waiting, writer = files
            gave_way = _batch_turn(waiting, writer)
            turn, started = BatchTurn(), time.monotonic()
            yield turn
            if turn.messages:
                held = (time.monotonic() - started) / turn.messages
                self.per_message = held if not self.per_message else 0.7 * self.per_message + 0.3 * held
            if gave_way or not _take(waiting, fcntl.LOCK_EX, 0):  # a message waited before or during it
                self.waited_at = time.monotonic()
            fcntl.flock(waiting, fcntl.LOCK_UN)

    def waiting(self) -> IntakeFiles | None:
        """One more intake write of this process on its way: the first takes the shared lock
        on the waiting file (a batch only looks at it: exclusive, let go at once). The
        process's files, or None when they cannot be opened."""
        with self._waiters_lock:
            if self._intake is None or self._intake.pid != os.getpid():  # first use, or a new process (a fork)
                opened = self._open()
                if opened is None:
                    return None
                self._intake = IntakeFiles(*opened)
            files = self._intake
            if files.waiters == 0:
                _take(files.waiting, fcntl.LOCK_SH, WAIT_SECONDS)
            files.waiters += 1
            return files

    def done_waiting(self, files: IntakeFiles) -> None:
        """That write is committed (or failed): the last one lets the shared lock go."""
        with self._waiters_lock:
            files.waiters -= 1
            if files.waiters == 0:
                fcntl.flock(files.waiting, fcntl.LOCK_UN)
                if files.retired:
                    files.close()

    @contextmanager
    def _opened(self):
        """(waiting, writer) opened for one turn, or None (no turns); closed after it, which
        releases whatever lock the turn still holds on them."""
        files = self._open()
        try:
            yield files
        finally:
            for fd in reversed(files or ()):  # the writer's file first
                os.close(fd)

    def _open(self) -> tuple[int, int] | None:
        """Both files, opened for this batch's turn alone, or once for the process's intake
        writes: flock locks belong to an open file, so a batch of the in-process jobs and the
        web server's threads of the same process take turns too."""
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


class IntakeFiles:
    """The waiting and writer files of one process's intake writes, and how many of them are on
    their way: the first takes the shared lock on the waiting file, the last lets it go."""

    def __init__(self, waiting: int, writer: int):
        self.pid, self.waiting, self.writer = os.getpid(), waiting, writer
        self.waiters = 0
        self.retired = False  # closed once its last write is done (``Turns.close``)

    def close(self) -> None:
        os.close(self.writer)
        os.close(self.waiting)


class BatchTurn:
    messages = 0  # taken by the batch: set by it once known


class IntakeTurn:
    """An intake write's turn: ``write()`` before its first statement that writes; once had,
    kept until the write is committed (``end``).

    The writes of one process wait for the writer's turn one behind the other, on a lock of
    the process (``writing``), and only the first looks at the writer's file. At saturation,
    the web worker's four threads all looked at it every 0.5 ms: that looking cost 0.35 ms of
    CPU per stored webhook and a tenth of the throughput (docs/benchmarks.md, section 1, round 9).
    The two files are the process's, opened once: opening and closing them for each write cost
    four system calls per webhook (section 1, round 10). A write of one row waits in
    gateway/grouped.py instead: whoever has the turn writes the rows of all the process's
    writes waiting for it, in one transaction (section 1, round 12)."""

    def __init__(self, turns: Turns | None):
        self.turns, self.had = turns, turns is None
        self.files: IntakeFiles | None = None  # the process's files, while this write waits or writes
        self.queued = False  # holds ``writing``: given back when the turn ends
        self.group = None  # set for a write of one row (gateway/grouped.py): it takes its turn there

    def write(self) -> None:
        if self.had:
            return
        self.files = self.turns.waiting()
        if self.files is not None:  # None: the files could not be opened, SQLite's lock alone
            self.queued = self.turns.writing.acquire(timeout=WAIT_SECONDS)  # not had: SQLite's lock alone, as below
            _writer_turn(self.files.writer)
        self.had = True

    def end(self) -> None:
        if self.files is None:
            return
        fcntl.flock(self.files.writer, fcntl.LOCK_UN)  # the writer's turn given back first
        self.turns.done_waiting(self.files)
        self.files = None
        if self.queued:
            self.turns.writing.release()


def _batch_turn(waiting: int, writer: int) -> bool:
    """The writer's turn, kept only when no intake write is waiting: a message may have come
    while the batch waited for another batch. Given back to the messages waiting, for at most
    YIELD_SECONDS in all (the time spent waiting for other batches does not count). True when
    it gave way."""
    yielded = 0.0
    while True:
        _writer_turn(writer)
        if yielded >= YIELD_SECONDS or _take(waiting, fcntl.LOCK_EX, 0):
            fcntl.flock(waiting, fcntl.LOCK_UN)  # (not held when the batch stopped giving way: harmless)
            return yielded > 0
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
    """The lock, looked at again after short pauses (0.1 ms, growing to 0.2 ms) for at most
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
