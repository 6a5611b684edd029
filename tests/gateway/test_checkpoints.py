"""SQLite's write-ahead log is copied into the database outside the writers' turn, and only
once enough of it waits (gateway/turns.py ``checkpoint``): not in a commit, where everyone
would wait for the copy, and not after every batch."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, event

from gateway import batch, turns
from tests.support.backlog import store_web_forms as _store

pytestmark = pytest.mark.sqlite_only  # SQLite's write-ahead log


def _checkpoints(runtime) -> list[str]:
    seen: list[str] = []

    @event.listens_for(runtime.db.engine, "before_cursor_execute")
    def look(connection, cursor, statement, parameters, context, executemany):
        if "wal_checkpoint" in statement:
            seen.append(statement)

    return seen


def test_the_write_ahead_log_is_copied_outside_the_writers_turn_and_stays_short(make_app, monkeypatch):
    monkeypatch.setattr(turns, "CHECKPOINT_FRAMES", 64)
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    log_file = runtime.db.turns.log_path
    with runtime.db.engine.connect() as connection:  # no connection copies it in its commit, holding the turn
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        page = connection.exec_driver_sql("PRAGMA page_size").scalar()
    copies = _checkpoints(runtime)
    longest = 0
    for round_ in range(8):
        ids = _store(runtime, 15, f"round{round_}")
        batch.process_batch(runtime, ids, len(ids))  # copies the log once it is long, after its turn
        longest = max(longest, os.stat(log_file).st_size)
    assert copies, "the log was never copied"
    assert longest < 4 * 64 * (page + 24)  # without the copies it only grows (a page and its frame's header)


def test_a_batch_after_a_copy_does_not_copy_the_log_again_until_it_is_long_again(make_app, monkeypatch):
    """SQLite writes the log again from its start once it is copied, but never shortens the
    file: a log file that had once been long said nothing, and every batch after it copied."""
    monkeypatch.setattr(turns, "CHECKPOINT_FRAMES", 64)
    runtime = make_app(GATEWAY_INLINE_JOBS=False).extensions["runtime"]
    copies = _checkpoints(runtime)
    round_ = 0
    while not copies and round_ < 20:
        ids = _store(runtime, 15, f"round{round_}")
        batch.process_batch(runtime, ids, len(ids))
        round_ += 1
    assert len(copies) == 1
    assert os.stat(runtime.db.turns.log_path).st_size >= 64 * 4096  # the file stays as long as it was
    assert turns._frames_not_copied(runtime.db.turns.index_path) == 0

    small = _store(runtime, 1, "small")  # a few pages of log
    batch.process_batch(runtime, small, 1)
    assert 0 < turns._frames_not_copied(runtime.db.turns.index_path) < 64
    assert len(copies) == 1

    round_ = 0
    while len(copies) == 1 and round_ < 20:  # …and once 64 pages wait, it is copied again
        ids = _store(runtime, 15, f"again{round_}")
        batch.process_batch(runtime, ids, len(ids))
        round_ += 1
    assert len(copies) == 2
    assert turns._frames_not_copied(runtime.db.turns.index_path) == 0


def test_no_log_index_no_copy(tmp_path):
    """A database with no log yet (or an index written by another SQLite) is not copied."""
    assert turns._frames_not_copied(str(tmp_path / "absent-shm")) is None
    (tmp_path / "odd-shm").write_bytes(b"\x00" * 200)
    assert turns._frames_not_copied(str(tmp_path / "odd-shm")) is None


_OTHER_PROCESS_TRUNCATES = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0)
print(connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0])
"""


def _hundred_rows_in_the_log(path: str) -> sqlite3.Connection:
    """A WAL database at ``path`` whose 100 rows are in the log, none copied yet; its writer's
    connection, to be kept open (the last connection to close copies the log and removes it)."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("CREATE TABLE t (x)")
    writer.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
    return writer


def test_looking_at_the_logs_length_keeps_this_processs_locks_on_it(tmp_path):
    """SQLite's locks on the log's index are POSIX locks: closing any descriptor of that file
    drops every lock the process holds on it, those of its other connections too (sqlite.org,
    "How To Corrupt An SQLite Database File", 2.2). A web worker looks at the log's length
    while its other threads read and write: the look must not open and close the file, or
    another process writes over pages they are using (a benchmark's database was found
    corrupted that way)."""
    path = str(tmp_path / "gateway.db")
    writer = _hundred_rows_in_the_log(path)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 100  # reading: a lock on the index

    for _ in range(3):
        assert turns._frames_not_copied(f"{path}-shm") > 0

    busy = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_TRUNCATES, path], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert busy == "1"  # the reader still holds its lock: the log cannot be emptied under it
    reader.execute("COMMIT")
    busy = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_TRUNCATES, path], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert busy == "0"
    writer.close()


def test_one_engine_disposed_of_keeps_the_locks_of_another_on_the_same_database(tmp_path):
    """Two engines of one process on one database (two apps, or a tool beside the gateway):
    disposing of one must not close the log index's descriptor the other still reads through,
    which would drop the other's locks as a look that opened and closed the file did."""
    path = str(tmp_path / "gateway.db")
    writer = _hundred_rows_in_the_log(path)
    first, second = turns.Turns(path), turns.Turns(path)
    engine = create_engine(f"sqlite:///{path}")
    first.checkpoint(engine)
    second.checkpoint(engine)  # both look (the log is short: nothing copied)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone()[0] == 100

    first.close()

    busy = subprocess.run([sys.executable, "-c", _OTHER_PROCESS_TRUNCATES, path], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert busy == "1"  # the reader's lock is still there
    reader.execute("COMMIT")
    second.close()
    engine.dispose()
    assert f"{path}-shm" not in turns._INDEX_DESCRIPTORS  # the last one closed it
    writer.close()
