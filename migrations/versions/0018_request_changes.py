"""request_changes: the requests changed since dedup's candidate search, on SQLite

The pipeline's batches search for each message's candidates before taking SQLite's write
lock, then catch up inside it with the requests written meanwhile (dedup/early.py). Triggers
log every request inserted, deleted, or changed in a column the search reads; one writer at
a time, so the log's ids follow the commits. PostgreSQL writes concurrently and searches
inside its transactions: the table stays empty there, without triggers.

Revision ID: 0018_request_changes
Revises: 0017_citizen_retention
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_request_changes"
down_revision = "0017_citizen_retention"
branch_labels = None
depends_on = None

# What dedup's search reads of a request (dedup/index.py ``_columns``), id aside.
SEARCHED = "code, status, category, created_at, description, lat, lon, address, language, priority, " \
           "dedup_cell, dedup_street"
TRIGGERS = {
    "requests_logged_insert": "AFTER INSERT ON requests",
    "requests_logged_update": f"AFTER UPDATE OF {SEARCHED} ON requests",
    "requests_logged_delete": "AFTER DELETE ON requests",
}


def upgrade() -> None:
    op.create_table(
        "request_changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("request_id", sa.Integer, nullable=False),
    )
    if op.get_context().dialect.name == "sqlite":
        for name, when in TRIGGERS.items():
            row = "old" if "DELETE" in when else "new"
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN "
                       f"INSERT INTO request_changes (request_id) VALUES ({row}.id); END")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("request_changes")
