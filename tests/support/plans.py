"""SQLite's query plans of what a piece of code ran: a look-up on a growing table must
search an index, not read the table (SQLite has no statistics, so its choice of index
follows the schema alone, and a test on a small database shows the plan of a large one)."""

from __future__ import annotations

import threading
from contextlib import contextmanager

from sqlalchemy import event


@contextmanager
def statements_of(engine):
    """The (SQL, parameters) the engine runs inside the block, in this thread (the app's
    background threads, such as the SLA watch, use the same engine meanwhile)."""
    ran: list[tuple] = []
    mine = threading.get_ident()

    def record(_connection, _cursor, statement, parameters, _context, _executemany):
        if threading.get_ident() == mine:
            ran.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield ran
    finally:
        event.remove(engine, "before_cursor_execute", record)


def plan(connection, statement: str, parameters) -> str:
    """EXPLAIN QUERY PLAN's steps, joined with spaces."""
    return " ".join(str(row[-1]) for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
