"""Every connection the gateway opens on SQLite (a session's, a webhook thread's own) has the
settings its guarantees rest on: the log (WAL) and a synced commit, so that an acknowledged
message survives a power cut; foreign keys checked; a wait for the write lock rather than an
error. A writer's transaction that takes the lock first (gateway/db.py ``write_first``: the
pipeline's batches, the scheduler's passes) keeps its statements' journals in memory, and only
it: a dashboard's groupings stay on disk."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.db import write_first

pytestmark = pytest.mark.sqlite_only

EXPECTED = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000}
FILE, MEMORY = 0, 2  # temp_store: SQLite's default (a file, as built), memory


def _settings(read) -> dict:
    return {name: read(f"PRAGMA {name}") for name in EXPECTED}


def test_every_connection_has_the_settings_its_guarantees_rest_on(runtime):
    with runtime.db.session() as session:
        assert _settings(lambda sql: session.execute(text(sql)).scalar()) == EXPECTED
    driver = runtime.db.direct().driver  # a webhook thread's connection, outside the pool
    assert _settings(lambda sql: driver.execute(sql).fetchone()[0]) == EXPECTED


def test_only_a_writers_transaction_keeps_its_temporary_storage_in_memory(runtime):
    def temp_store(session) -> int:
        return session.execute(text("PRAGMA temp_store")).scalar()

    with runtime.db.session() as session:
        assert temp_store(session) == FILE  # a reader: a dashboard, an inbox page
    with runtime.db.session() as session:
        write_first(session)
        assert temp_store(session) == MEMORY
        driver = session.connection().connection.dbapi_connection
    with runtime.db.session() as session:  # the same connection, back from the pool
        assert session.connection().connection.dbapi_connection is driver
        assert temp_store(session) == FILE
