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

The pipeline's batches run their hottest statements the same way (``InTransaction``), on
the driver connection under their session's transaction: the rows are written in it, and
undone with it or with a SAVEPOINT. Those statements still pass through the engine's
``before_cursor_execute`` and ``after_cursor_execute`` listeners (the benchmarks count and
time them; the tests read their query plans).
"""

from __future__ import annotations

import os
import threading
from collections import namedtuple
from functools import cache

from sqlalchemy import bindparam, insert
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


class _Runner:
    """Runs compiled Core statements on ``self.driver``, a DBAPI connection."""

    dialect = None
    driver = None

    def execute(self, statement, parameters: dict | None = None) -> DirectResult:
        parameters = parameters or {}
        compiled = _compiled(self.dialect, statement, tuple(parameters))
        return DirectResult(compiled, self._run(compiled.sql, compiled.values(parameters)))

    def _run(self, sql: str, values, many: bool = False) -> list:
        cursor = None
        try:
            cursor = self.driver.cursor()
            self._seen(cursor, sql, values, many, before=True)
            if many:
                cursor.executemany(sql, values)
                rows = []
            else:
                cursor.execute(sql, values)
                rows = cursor.fetchall() if cursor.description is not None else []
            self._seen(cursor, sql, values, many, before=False)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._error(exc, sql, values, cursor) from exc
        finally:
            if cursor is not None:
                cursor.close()
        return rows

    def _seen(self, cursor, sql, values, many: bool, before: bool) -> None:
        """Each statement, before and after it ran (``InTransaction``: the engine's listeners)."""

    def _error(self, exc, sql, values, cursor) -> DBAPIError:
        dropped = self.dialect.is_disconnect(exc, self.driver, cursor)
        if dropped:
            self._dropped()
        return DBAPIError.instance(sql, values, exc, self.dialect.loaded_dbapi.Error,
                                   connection_invalidated=dropped, dialect=self.dialect)

    def _dropped(self) -> None:
        """The server dropped the connection."""


class DirectConnection(_Runner):
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

    def _dropped(self) -> None:
        self.close()


class InTransaction(_Runner):
    """The statements of a session's transaction, on its own driver connection: written in
    that transaction (and its SAVEPOINT), as through ``session.connection()``. The session's
    pending ORM changes are not flushed first, as they are not for a Core statement run on
    its connection either. Made where it is used: one made inside a SAVEPOINT
    (``session.begin_nested()``) begins it, as ``session.connection()`` does; one made before
    would write outside it."""

    def __init__(self, session):
        self.connection = session.connection()  # the transaction begun, the connection checked out
        self.dialect = self.connection.dialect
        self.driver = self.connection.connection.dbapi_connection
        dispatch = self.connection.dispatch
        self._before, self._after = dispatch.before_cursor_execute, dispatch.after_cursor_execute

    def executemany(self, statement, rows: list[dict]) -> None:
        """``statement`` once for each of ``rows``, every one with the same keys (one
        ``executemany`` of the driver); for statements that return no rows."""
        if not rows:
            return
        keys = tuple(rows[0])
        if any(tuple(row) != keys for row in rows):
            raise ValueError("executemany's rows must have the same keys, in the same order")
        compiled = _compiled(self.dialect, statement, keys)
        if compiled.processors:
            raise ValueError("executemany returns no rows: run a statement that returns rows with insert_many")
        self._run(compiled.sql, [compiled.values(row) for row in rows], many=True)

    def insert_many(self, table, rows: list[dict], returning: tuple) -> list:
        """``rows`` (every one with the same keys) inserted into ``table`` by multi-row
        INSERTs (up to ``ROWS_PER_INSERT`` rows each), returning the ``returning`` columns of
        each in no particular order: match them by a unique column, not by position."""
        found = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start:start + ROWS_PER_INSERT]
            keys = tuple(chunk[0])
            if any(tuple(row) != keys for row in chunk):
                raise ValueError("insert_many's rows must have the same keys, in the same order")
            statement = _many_values(table, keys, len(chunk), returning)
            flat = {f"{key}__{i}": row[key] for i, row in enumerate(chunk) for key in keys}
            compiled = _compiled(self.dialect, statement, ())
            found += DirectResult(compiled, self._run(compiled.sql, compiled.values(flat))).all()
        return found

    def _seen(self, cursor, sql, values, many: bool, before: bool) -> None:
        for listener in self._before if before else self._after:
            listener(self.connection, cursor, sql, values, None, many)

    def _dropped(self) -> None:
        self.connection.invalidate()  # the session's transaction is over: its caller rolls it back


ROWS_PER_INSERT = 100  # SQLite allows 32,766 parameters in a statement; a delivery has 9 columns


@cache
def _many_values(table, keys: tuple[str, ...], count: int, returning: tuple):
    """An INSERT of ``count`` rows of ``keys`` into ``table`` (parameters ``<key>__<row>``),
    returning ``returning`` (column names). Kept for good, as its compiled form is
    (``_COMPILED``): at most ``ROWS_PER_INSERT`` of them for each table and keys."""
    rows = [{key: bindparam(f"{key}__{i}", type_=table.c[key].type) for key in keys} for i in range(count)]
    return insert(table).values(rows).returning(*(table.c[name] for name in returning))


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

    def one_or_none(self):
        if len(self._rows) > 1:
            raise LookupError(f"expected one row at most, got {len(self._rows)}")
        return self._compiled.row(self._rows[0]) if self._rows else None

    def scalar(self):
        return self._compiled.row(self._rows[0])[0] if self._rows else None


class _Compiled:
    """A statement compiled for a dialect with its parameters' keys: the SQL, the order of its
    parameters, and each value's and each column's processor."""

    def __init__(self, dialect, statement, keys: tuple[str, ...]):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) if statement.is_dml else None)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("a statement with expanding parameters cannot be compiled once")
        if getattr(compiled, "insert_prefetch", None) or getattr(compiled, "update_prefetch", None):
            # SQLAlchemy's execution would compute those defaults for each row; here they would be NULL
            raise ValueError("give every column that has a default computed in Python: "
                             + ", ".join(c.key for c in compiled.insert_prefetch + compiled.update_prefetch))
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
