"""The dedup tests' database: a migrated SQLite file of their own (test_candidates.py runs on
PostgreSQL too, with its own ``engine``)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import create_engine


@pytest.fixture
def engine(tmp_path, migrated_sqlite):
    shutil.copy(migrated_sqlite, tmp_path / "gateway.db")
    engine = create_engine(f"sqlite:///{tmp_path / 'gateway.db'}")
    yield engine
    engine.dispose()
