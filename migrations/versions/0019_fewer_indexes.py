"""Two indexes dropped that repeated the start of another: every write paid for them

``ix_inbound_messages_state`` (state) is the start of ``ix_inbound_messages_state_id`` (state,
id), and ``ix_requests_department`` (department) the start of
``ix_requests_department_created`` (department, created_at): each look-up they served, the
longer one serves. Every message stored and every change of its state, every request
written, updated both; the pipeline writes a request and changes its message's state for
each message (docs/benchmarks.md, section 2, round 13). On SQLite, a bare ``department = ?``
also picked the shorter one and read every request the department ever had.

Revision ID: 0019_fewer_indexes
Revises: 0018_request_changes
"""

from gateway.migrating import create_index, drop_index

revision = "0019_fewer_indexes"
down_revision = "0018_request_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_index("ix_inbound_messages_state", "inbound_messages")  # DROP INDEX CONCURRENTLY on PostgreSQL
    drop_index("ix_requests_department", "requests")


def downgrade() -> None:
    create_index("ix_requests_department", "requests", ["department"])
    create_index("ix_inbound_messages_state", "inbound_messages", ["state"])
