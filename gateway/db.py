"""Engine, sessions and migrations. SQLite (WAL, durable commits) by default, PostgreSQL in
production; the same Alembic migrations serve both."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .direct import DirectConnection, DirectConnections
from .grouped import IntakeGroup
from .settings import ROOT
from .turns import HOLD_WHILE_ARRIVING, Turns

MIGRATIONS = ROOT / "migrations"
CHUNK = 20  # rows per transaction of the scheduler's passes (``Database.in_short_transactions``)
log = logging.getLogger(__name__)


def make_engine(url: str, pre_ping: bool = True, autocommit: bool = False) -> Engine:
    """PostgreSQL only: ``pre_ping=False``, no liveness round trip per check-out, for callers
    that replace a connection the server dropped themselves; ``autocommit``, each statement its
    own transaction unless the caller asks for one (``Database.intake_engine``)."""
    if url.startswith("sqlite"):
        _ensure_sqlite_folder(url)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkin", _temporary_storage_back)
        if Turns.for_url(url).log_path is not None:  # its log is copied outside the commits: gateway/turns.py
            event.listen(engine, "connect", _no_checkpoint_in_commits)
        return engine
    return create_engine(url, pool_pre_ping=pre_ping, pool_size=5, max_overflow=10,
                         **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}))


def _ensure_sqlite_folder(url: str) -> None:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed intake survives a power cut, not only a crash; the webhook answers after it.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _temporary_storage_back(connection, record) -> None:
    """A connection whose transaction kept its temporary storage in memory (``write_first``)
    goes back to the pool with SQLite's default. (An invalidated one comes back as None, and
    is not handed out again.)"""
    if connection is not None and record is not None and record.info.pop(_IN_MEMORY, False):
        connection.execute("PRAGMA temp_store=DEFAULT")


_IN_MEMORY = "temp_store_memory"


def _no_checkpoint_in_commits(connection, _record) -> None:
    """No checkpoint inside a commit, where it would hold the writers' turn (gateway/turns.py
    ``checkpoint`` does it instead): only for a database file whose log Turns copies."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


class Database:
    """Bound to an app with init_app; hands out sessions to requests and jobs."""

    def __init__(self):
        self.engine: Engine | None = None
        self.sessions: sessionmaker[Session] | None = None
        self.url: str | None = None
        self._intake: Engine | None = None
        self._direct: DirectConnections | None = None
        self._intake_lock = threading.Lock()
        self.turns = Turns(None)

    def init_app(self, app) -> None:
        self.url = app.config["DATABASE_URL"]
        self.engine = make_engine(self.url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.turns = Turns.for_url(self.url)  # SQLite: webhooks' writes before the pipeline's next batch
        if self.turns.active:
            self.turns.group = IntakeGroup(self.turns, lambda: self.turns.checkpoint(self.engine))
        event.listen(self.engine, "engine_disposed", self._dispose_intake)
        app.extensions["database"] = self

    @property
    def intake_engine(self) -> Engine:
        """Where webhooks store what arrived (gateway/intake.py ``write``). On PostgreSQL its own
        pool, in autocommit, without the pre-ping: ``write`` replaces a connection the server
        dropped (a restart) and runs its idempotent statements again, so the liveness round
        trip each check-out costs is not needed there. SQLite: the main engine (no ping).
        Created on first use (after a server's fork); disposed with the main engine."""
        if self._intake is not None:
            return self._intake
        if self.engine.dialect.name == "sqlite":
            return self.engine
        with self._intake_lock:
            if self._intake is None:
                self._intake = make_engine(self.url, pre_ping=False, autocommit=True)
            return self._intake

    def direct(self) -> DirectConnection:
        """This thread's connection for the webhooks' writes (gateway/direct.py), to the intake
        engine's database."""
        connections = self._direct
        if connections is None:
            engine = self.intake_engine
            with self._intake_lock:
                if self._direct is None:
                    self._direct = DirectConnections(engine)
                connections = self._direct
        return connections.get()

    def _dispose_intake(self, _engine) -> None:
        with self._intake_lock:
            if self._direct is not None:
                self._direct.close_all()
                self._direct = None
            self.turns.close()
            if self._intake is not None:
                self._intake.dispose()
                self._intake = None

    @contextmanager
    def session(self):
        """A session committed on success, rolled back on error."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def in_short_transactions(self, ids: list[int], work: Callable[[Session, int], list], size: int = CHUNK) -> list:
        """``work(session, id)`` for each of ``ids``, in transactions of at most ``size`` ids and
        about HOLD_WHILE_ARRIVING of work; the lists it returns, joined. For the scheduler's
        passes over many rows (SLA marks, closing, Open311 polling): one transaction for a whole
        pass held the write lock for seconds on a busy day (SQLite: 443 requests marked past
        due in 2.1 s, every webhook waiting meanwhile; PostgreSQL: the rows locked against
        agents as long). Each transaction is a background writer's turn (gateway/turns.py:
        SQLite, the messages arriving are stored first) and takes the write lock at its start
        (``write_first``). ``work`` reads its row again in the transaction: it may have changed
        since the pass chose it.

        A transaction that fails is rolled back and its ids are done again one per transaction,
        so one row that cannot be done is logged and left for the next pass, not holding the
        others back."""
        done: list = []
        start = 0
        while start < len(ids):
            chunk: list[int] = []
            try:
                with self.turns.batch(), self.session() as session:
                    write_first(session)
                    results, began = [], time.monotonic()
                    for item in ids[start:start + size]:
                        chunk.append(item)
                        results.append(work(session, item))
                        if time.monotonic() - began >= HOLD_WHILE_ARRIVING:
                            break
            except Exception:  # noqa: BLE001 - each id again alone; a single one is logged and left
                if not chunk:
                    raise  # the transaction could not begin (the database is away): the next pass
                if size > 1:
                    done += self.in_short_transactions(chunk, work, size=1)
                else:
                    log.exception("%s(%s) failed; left for the next pass", getattr(work, "__name__", "work"), chunk[0])
                start += len(chunk)
                continue
            start += len(chunk)
            done += [value for result in results for value in result]
        return done

    def ping(self) -> bool:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True

    def upgrade(self) -> None:
        """Apply pending migrations."""
        upgrade(self.url)


def write_first(session: Session) -> None:
    """SQLite: the session's transaction takes the write lock at once (BEGIN IMMEDIATE), so that
    nothing it reads can be made stale by another writer before its first write (a deferred
    transaction would then fail at that write). PostgreSQL: nothing (rows are locked as read).

    On SQLite the transaction's temporary storage is in memory, until its connection is back
    in the pool. A statement on a table with triggers (requests: the log dedup catches up
    from) keeps a journal of the pages it changes, to undo it alone; past 64 KiB SQLite writes
    that journal to a temporary file, and a request's INSERT changes a page of each of its 16
    indexes: each wrote and read a file, 60 µs of its 100 (docs/benchmarks.md §2, round 14).
    Only here: a dashboard's large groupings would then stay in memory too (the year view's
    first build of its roll-up took 110 MB more)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.info[_IN_MEMORY] = True
        connection.exec_driver_sql("PRAGMA temp_store=MEMORY")
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def schema_behind(engine: Engine) -> str | None:
    """Why this database's schema is not this version's (None when it is): no tables yet, or
    migrations not applied."""
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    head = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False))).get_current_head()
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        return f"the database {where} has no tables yet"
    if current != head:
        return f"the database {where} is at migration {current}, this version needs {head}"
    return None


def upgrade(url: str, revision: str = "head") -> None:
    _ensure_sqlite_folder(url) if url.startswith("sqlite") else None
    command.upgrade(alembic_config(url), revision)
