"""requests: the citizen's index carries the category and the creation time

Dedup's same-citizen step reads a citizen's open requests of one category within a window.
On an index of the citizen alone, SQLite's planner preferred (category, status, created_at)
and read every open request of the category in the window, for each message; this one
serves that query (the citizen's few requests) and every lookup of the citizen's requests.

Revision ID: 0012_citizen_requests
Revises: 0011_inbound_sender
"""

from gateway.migrating import create_index, drop_index


revision = "0012_citizen_requests"
down_revision = "0011_inbound_sender"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index("ix_requests_citizen", "requests", ["citizen_id", "category", "created_at"])
    drop_index("ix_requests_citizen_id", "requests")


def downgrade() -> None:
    create_index("ix_requests_citizen_id", "requests", ["citizen_id"])
    drop_index("ix_requests_citizen", "requests")
