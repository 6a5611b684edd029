"""Shared fixtures: a migrated database per test, the app, and real servers on loopback."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

import pytest
from redis.exceptions import RedisError
from sqlalchemy import create_engine, text
from sqlalchemy.exc import InterfaceError, OperationalError

from gateway import create_app
from gateway.db import upgrade

from .support.servers import LiveServer, PostgresServer, RedisServer, SmtpServer

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
API_TOKEN = "test-api-token-0123456789"
# Every process the tests start (`gateway serve`, `gateway worker`, the poller…) runs this
# checkout's code: the venv's editable install may point at another checkout, one that ran
# ``make install`` with this venv.
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


# A database or Redis that went away is what the fault tests do; any other exception a
# background job, the pipeline, the outbox or the scheduler logs is a bug the answer to the
# test would not show (the sweeper retries it later): the test fails on it.
WENT_AWAY = (OperationalError, InterfaceError, RedisError, ConnectionError, TimeoutError)


def pytest_addoption(parser):
    parser.addoption("--database", choices=("sqlite", "postgresql"), default="sqlite",
                     help="every test app's database: SQLite (the default) or PostgreSQL, production's; with "
                          "postgresql, the tests already run on both and those about SQLite itself are left out")


def pytest_configure(config):
    config.addinivalue_line("markers", "errors_expected: the test makes background work raise on purpose")
    config.addinivalue_line("markers", "sqlite_only: the test is about SQLite itself (its lock, its query "
                                       "plans, its file): left out of a run with --database postgresql")


def pytest_collection_modifyitems(config, items):
    """With ``--database postgresql``: every test whose app takes its database from ``settings``,
    on PostgreSQL, except those already run there (``pg_url``, a sqlite/postgresql parameter)
    and those about SQLite itself."""
    if config.getoption("--database") != "postgresql":
        return
    kept, left = [], []
    for item in items:
        params = {str(value) for value in getattr(getattr(item, "callspec", None), "params", {}).values()}
        already = "pg_url" in item.fixturenames or {"sqlite", "postgresql"} & params
        (left if already or item.get_closest_marker("sqlite_only") else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept


@pytest.fixture(autouse=True)
def no_unexpected_error_in_background_work(request, caplog):
    yield
    if request.node.get_closest_marker("errors_expected") or "faults" in request.node.path.parts:
        return  # the fault suite kills servers and workers at any moment: it checks outcomes instead
    raised = [f"{r.name}: {r.getMessage()} ({type(r.exc_info[1]).__name__}: {r.exc_info[1]})"
              for r in caplog.get_records("call")
              if r.levelno >= logging.ERROR and r.exc_info and r.exc_info[1] is not None
              and r.name.startswith("gateway") and not isinstance(r.exc_info[1], WENT_AWAY)]
    assert raised == [], "background work raised"


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One migrated SQLite file, copied for each test (migrating takes longer than copying)."""
    path = tmp_path_factory.mktemp("schema") / "gateway.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def smtp_server():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(request, tmp_path, migrated_sqlite, smtp_server) -> dict:
    """Test overrides: a fresh database (SQLite, or PostgreSQL with ``--database postgresql``),
    the test SMTP server, fast retries."""
    if request.config.getoption("--database") == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        database = tmp_path / "gateway.db"
        shutil.copy(migrated_sqlite, database)
        url = f"sqlite:///{database}"
    return {
        "DATABASE_URL": url,
        "GATEWAY_CONFIG_DIR": str(ROOT / "config"),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_API_TOKEN": API_TOKEN,
        "GATEWAY_SECRET_KEY": "test-secret",
        "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8311",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SMTP_FROM": "311@bellerive.example.org",
        "GATEWAY_SWEEP_SECONDS": 0.2,
        "GATEWAY_BACKOFF_SECONDS": 0.2,
        "GATEWAY_LEASE_SECONDS": 5.0,
        "REDIS_URL": None,
    }


@pytest.fixture
def make_app(settings):
    """Build an app with extra overrides; every app built is shut down after the test."""
    apps = []

    def build(**overrides):
        app = create_app({**settings, **overrides})
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["runtime"].jobs.shutdown()
        app.extensions["database"].engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def runtime(app):
    return app.extensions["runtime"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth() -> dict:
    return {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def live_server(app):
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server():
    server = PostgresServer().start()
    yield server
    server.stop()


def _create_database(server_url: str, name: str, template: str | None = None) -> str:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else "")))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def pg_template(postgres_server) -> str:
    """A database migrated once, copied for each test (CREATE DATABASE … TEMPLATE)."""
    upgrade(_create_database(postgres_server.url, "gw_template"))
    return "gw_template"


@pytest.fixture
def pg_url(postgres_server, pg_template):
    """A fresh, migrated database on the session's PostgreSQL server."""
    return _create_database(postgres_server.url, f"gw_{uuid.uuid4().hex[:10]}", pg_template)
