"""Index changes in migrations that do not stop a running city.

A plain CREATE INDEX on PostgreSQL holds a lock that makes every write to the table wait
until the index is built: on a year of requests, webhooks and the pipeline would queue for
as long. On PostgreSQL these helpers build and drop indexes CONCURRENTLY, outside the
migration's transaction (PostgreSQL refuses it inside one): writes go on meanwhile. A build
that was interrupted (the process killed, the server restarted) leaves an invalid index of
that name; the next ``gateway db upgrade`` drops it and builds it again. SQLite has no such
option: its migrations build as before.

Used for indexes on tables that already hold rows; an index on a table created in the same
migration is built with the table, as usual.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

_VALIDITY = text("SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                 "WHERE c.relname = :name AND c.relkind = 'i' AND pg_table_is_visible(c.oid)")


def _postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def create_index(name: str, table: str, columns: list[str]) -> None:
    if not _postgresql():
        op.create_index(name, table, columns)
        return
    with op.get_context().autocommit_block():
        if not op.get_context().as_sql and op.get_bind().execute(_VALIDITY, {"name": name}).scalar() is False:
            op.drop_index(name, table_name=table, postgresql_concurrently=True)  # an interrupted build's
        op.create_index(name, table, columns, postgresql_concurrently=True)


def drop_index(name: str, table: str) -> None:
    if not _postgresql():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
