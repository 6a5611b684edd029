"""Migrations: the schema they build is the models', both ways, and on PostgreSQL an index
added to a table that already holds rows does not stop the city's writes while it builds."""

from __future__ import annotations

import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from dedup import early
from gateway.db import alembic_config, upgrade
from gateway.models import Base, utcnow
from tests.support.servers import wait_until


def _differences(url: str) -> list:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        upgrade(url)
        return url
    return request.getfixturevalue("pg_url")


def test_the_migrations_build_the_models_schema_and_step_back_cleanly(database_url):
    assert _differences(database_url) == []

    command.downgrade(alembic_config(database_url), "0007_dedup")  # every index added since on live tables
    upgrade(database_url)

    assert _differences(database_url) == []
    engine = create_engine(database_url)
    # SQLite: the triggers logging requests' changes are there at the head (a migration
    # rebuilding the requests table would drop them), so dedup searches before the write lock.
    assert early.logged(engine) is database_url.startswith("sqlite")
    engine.dispose()


# Rows are written as the schema of an older version holds them (plain SQL, the columns it
# had), not through today's models, whose later columns that schema has not got yet.
def _write_citizen(session, value: str, kind: str = "email") -> None:
    citizen = session.execute(text("INSERT INTO citizens (consent, created_at) VALUES (true, :now) RETURNING id"),
                              {"now": utcnow()}).scalar()
    session.execute(text("INSERT INTO contact_points (citizen_id, kind, value, undeliverable, opted_out, created_at) "
                         "VALUES (:citizen, :kind, :value, false, false, :now)"),
                    {"citizen": citizen, "kind": kind, "value": value, "now": utcnow()})


def _add_citizen(url: str, value: str, kind: str = "email", lock_timeout: str = "0") -> None:
    engine = create_engine(url)
    with Session(engine) as session:
        session.execute(text(f"SET lock_timeout = '{lock_timeout}'"))
        _write_citizen(session, value, kind)
        session.commit()
    engine.dispose()


def test_citizens_are_written_while_an_index_is_built_on_postgresql(pg_url):
    command.downgrade(alembic_config(pg_url), "0012_citizen_requests")  # before the contact points' value index
    engine = create_engine(pg_url)
    batch = Session(engine)  # a pipeline batch under way: a new citizen written, not committed yet
    _write_citizen(batch, "en-cours@example.org")
    failures: list[BaseException] = []
    migrating = threading.Thread(target=lambda: _catching(failures, upgrade, pg_url))
    migrating.start()
    try:
        wait_until(lambda: _waiting_to_build(engine, "ix_contact_points_value"), timeout=20)
        # Meanwhile a citizen writes in. A plain CREATE INDEX, queued for its lock, would keep
        # this write waiting behind it until the whole upgrade commits.
        _add_citizen(pg_url, "pendant@example.org", lock_timeout="3s")
    finally:
        batch.commit()
        batch.close()
        migrating.join(timeout=60)
    assert failures == []
    assert _valid(engine, "ix_contact_points_value") is True
    assert _differences(pg_url) == []
    engine.dispose()


def test_an_interrupted_index_build_is_built_again_on_the_next_upgrade(pg_url):
    command.downgrade(alembic_config(pg_url), "0012_citizen_requests")
    _add_citizen(pg_url, "même@example.org", "email")
    _add_citizen(pg_url, "même@example.org", "messenger")
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection, pytest.raises(Exception, match="could not create unique index"):
        # A build that fails half-way leaves an invalid index of that name, as a killed one does.
        connection.execute(text("CREATE UNIQUE INDEX CONCURRENTLY ix_contact_points_value ON contact_points (value)"))
    assert _valid(engine, "ix_contact_points_value") is False

    upgrade(pg_url)

    assert _valid(engine, "ix_contact_points_value") is True
    assert _differences(pg_url) == []
    engine.dispose()


def _catching(failures: list, work, *args) -> None:
    try:
        work(*args)
    except BaseException as exc:  # noqa: BLE001 - reported by the test
        failures.append(exc)


def _waiting_to_build(engine, name: str) -> bool:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE :build AND wait_event_type = 'Lock'"),
            {"build": f"CREATE INDEX%{name}%"}).scalar() > 0


def _valid(engine, name: str) -> bool | None:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :name"),
            {"name": name}).scalar()


def test_codes_given_for_messages_already_joined_lead_to_their_requests_after_the_upgrade(database_url):
    """0015: an SMS joined to another request before this version keeps a working code."""
    command.downgrade(alembic_config(database_url), "0014_delivery_external_id")
    engine = create_engine(database_url)
    with Session(engine) as session:
        request_id = session.execute(text(
            "INSERT INTO requests (code, status, kind, priority, channel, language, description, created_at, "
            "updated_at) VALUES ('R-2026-1000007', 'routed', 'service_request', 'routine', 'sms', 'fr', 'Trou', "
            ":now, :now) RETURNING id"), {"now": utcnow()}).scalar()
        for provider_id, reserved, processed in [("SM-first", "R-2026-1000007", True),
                                                 ("SM-again", "R-2026-2000004", True),  # joined the first one's
                                                 ("SM-waiting", "R-2026-3000001", False)]:
            session.execute(text(
                "INSERT INTO inbound_messages (channel, provider_id, received_at, content_type, headers, body, state, "
                "attempts, reserved_code, request_id, processed_at) VALUES ('twilio_sms', :provider_id, :now, "
                "'application/x-www-form-urlencoded', '{}', :body, :state, 0, :reserved, :request, :processed)"),
                {"provider_id": provider_id, "now": utcnow(), "body": b"", "state": "processed" if processed else
                 "received", "reserved": reserved, "request": request_id if processed else None,
                 "processed": utcnow() if processed else None})
        session.commit()
    upgrade(database_url)
    with engine.connect() as connection:
        given = connection.execute(text("SELECT code, request_id FROM given_codes")).all()
    engine.dispose()
    assert [tuple(row) for row in given] == [("R-2026-2000004", request_id)]  # not its own code, nor a waiting one's
