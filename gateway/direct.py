"""The intake's few statements run on a driver connection each thread keeps.

A webhook stores what arrived with one statement, or two for an SMS (gateway/intake.py).
Through SQLAlchemy's ``Connection`` each statement pays its execution path (events, the
compiled cache's key, the result's set-up), and each webhook a pool check-out and a check-in
with its reset. That was 0.14 ms of the 0.79 ms of CPU a Telegram webhook cost in one
process (docs/benchmarks.md §1, round 10).

SQLAlchemy still does the work that matters here:
- it writes the SQL: each statement is compiled once per dialect;
- it converts every value, through the type's own bind and result processors (the JSON
  headers, the time zones, the bytes);
- it opens the connection: the engine's connect events have run (SQLite's pragmas,
  PostgreSQL's autocommit), and then the connection is detached from the pool.
Only running the statement on the driver's cursor is done here.

Each thread keeps its own connection (``DirectConnections``), so the pool does not check
them out and back. Errors reach callers as SQLAlchemy's ``DBAPIError``, with
``connection_invalidated`` set when the server dropped the connection; the dropped
connection is then closed, and the thread's next write opens a new one.
"""

from __future__ import annotations

import os
import threading
from collections import namedtuple

from sqlalchemy.exc import DBAPIError


class DirectConnections:
    """One ``DirectConnection`` per thread (and per process: a fork opens its own) to
    ``engine``; all of them closed by ``close_all`` (the engine's disposal)."""

    def __init__(self, engine):
        self.engine = engine
        self._local = threading.local()
        self._lock = threading.Lock()
        self._opened: list[DirectConnection] = []

    def get(self) -> DirectConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.pid != os.getpid():
            connection = DirectConnection(self.engine)
            self._local.connection = connection
            with self._lock:
                self._opened = [c for c in self._opened if not c.closed] + [connection]
        return connection

    def close_all(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            if connection.pid == os.getpid():  # a parent's connections are the parent's to close
                connection.close()


class DirectConnection:
    """Runs SQLAlchemy Core statements on a DBAPI connection of its own: ``execute``, and
    ``begin`` / ``commit`` / ``rollback``. SQLite: the driver begins the transaction at the
    first write, as under SQLAlchemy. PostgreSQL (an autocommit engine): each statement
    commits by itself unless ``begin`` was called."""

    def __init__(self, engine):
        self.dialect = engine.dialect
        self.pid = os.getpid()
        self.closed = False
        try:
            proxied = engine.raw_connection()  # the engine's connect events have run on it
        except self.dialect.loaded_dbapi.Error as exc:  # the server is down: an error like SQLAlchemy's
            raise DBAPIError.instance(None, None, exc, self.dialect.loaded_dbapi.Error, dialect=self.dialect) from exc
        proxied.detach()  # ours until closed; the pool opens another for its own users
        self.driver = proxied.dbapi_connection

    def execute(self, statement, parameters: dict | None = None) -> DirectResult:
        parameters = parameters or {}
        compiled = _compiled(self.dialect, statement, tuple(parameters))
        values = compiled.values(parameters)
        cursor = None
        try:
            cursor = self.driver.cursor()
            cursor.execute(compiled.sql, values)
            rows = cursor.fetchall() if cursor.description is not None else []
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._error(exc, compiled.sql, values, cursor) from exc
        finally:
            if cursor is not None:
                cursor.close()
        return DirectResult(compiled, rows)

    def begin(self) -> None:
        """Several writes in one transaction (PostgreSQL: the engine is in autocommit)."""
        if self.dialect.name == "postgresql":
            self.execute_sql("BEGIN")

    def execute_sql(self, sql: str) -> None:
        try:
            with self.driver.cursor() as cursor:
                cursor.execute(sql)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._error(exc, sql, (), None) from exc

    def commit(self) -> None:
        try:
            self.driver.commit()
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._error(exc, "COMMIT", (), None) from exc

    def rollback(self) -> None:
        """Whatever this transaction wrote undone; a connection already dropped is closed."""
        if self.closed:
            return
        try:
            self.driver.rollback()
        except self.dialect.loaded_dbapi.Error:
            self.close()

    def close(self) -> None:
        self.closed = True
        try:
            self.driver.close()
        except self.dialect.loaded_dbapi.Error:
            pass  # already gone with its server: nothing left to release

    def _error(self, exc, sql, values, cursor) -> DBAPIError:
        dropped = self.dialect.is_disconnect(exc, self.driver, cursor)
        if dropped:
            self.close()
        return DBAPIError.instance(sql, values, exc, self.dialect.loaded_dbapi.Error,
                                   connection_invalidated=dropped, dialect=self.dialect)


class DirectResult:
    """The rows a statement returned, converted by their types' result processors."""

    def __init__(self, compiled: _Compiled, rows: list):
        self._compiled, self._rows = compiled, rows

    def all(self) -> list:
        return [self._compiled.row(raw) for raw in self._rows]

    def one(self):
        if len(self._rows) != 1:
            raise LookupError(f"expected one row, got {len(self._rows)}")
        return self._compiled.row(self._rows[0])

    def scalar(self):
        return self._compiled.row(self._rows[0])[0] if self._rows else None


class _Compiled:
    """A statement compiled for a dialect with its parameters' keys: the SQL, the order of its
    parameters, and each value's and each column's processor."""

    def __init__(self, dialect, statement, keys: tuple[str, ...]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if statement.is_dml else None)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement with expanding parameters cannot be compiled once")
        self.sql = compiled.string
        self.positional = compiled.positional
        names = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        # (name, the statement's own value for it, its processor), in the driver's order
        self.plan = [(name, compiled.binds[name].effective_value,
                      compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names]
        columns = list(statement.exported_columns) if hasattr(statement, "exported_columns") else []
        self.processors = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
        self.Row = namedtuple("Row", [column.key for column in columns] or ["value"], rename=True)

    def values(self, parameters: dict):
        """The parameters in the driver's form: given ones by key, the statement's own
        literals (a LIMIT, a constant compared with) from the statement."""
        get = parameters.get
        if self.positional:
            return tuple([get(name, own) if process is None else process(get(name, own))
                          for name, own, process in self.plan])
        return {name: get(name, own) if process is None else process(get(name, own)) for name, own, process in self.plan}

    def row(self, raw):
        return self.Row(*(value if process is None else process(value)
                          for value, process in zip(raw, self.processors, strict=False)))


_COMPILED: dict[tuple, _Compiled] = {}
_COMPILING = threading.Lock()


def _compiled(dialect, statement, keys: tuple[str, ...]) -> _Compiled:
    key = (dialect.name, dialect.driver, dialect.paramstyle, statement, keys)
    compiled = _COMPILED.get(key)
    if compiled is None:
        with _COMPILING:
            compiled = _COMPILED.setdefault(key, _Compiled(dialect, statement, keys))
    return compiled
