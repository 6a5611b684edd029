"""Every connection the gateway opens on SQLite (a session's, a webhook thread's own) has the
settings its guarantees rest on: the log (WAL) and a synced commit, so that an acknowledged
message survives a power cut; foreign keys checked; a wait for the write lock rather than an
error; and the statements' journals in memory (gateway/db.py ``_sqlite_pragmas``)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

pytestmark = pytest.mark.sqlite_only

EXPECTED = {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1, "busy_timeout": 30000, "temp_store": 2}


def _settings(read) -> dict:
    return {name: read(f"PRAGMA {name}") for name in EXPECTED}


def test_every_connection_has_the_settings_its_guarantees_rest_on(runtime):
    with runtime.db.session() as session:
        assert _settings(lambda sql: session.execute(text(sql)).scalar()) == EXPECTED
    driver = runtime.db.direct().driver  # a webhook thread's connection, outside the pool
    assert _settings(lambda sql: driver.execute(sql).fetchone()[0]) == EXPECTED
