"""open311 attributes, dashboard roll-up and indexes

Revision ID: 0009_open311
Revises: 0001
"""
from alembic import op

from gateway.migrating import create_index, drop_index
import sqlalchemy as sa


revision = "0009_open311"
down_revision = "0008_inbox"  # chained after 0008 when merged
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("attributes", sa.JSON(), nullable=True))
    create_index("ix_requests_period", "requests",
                 ["created_at", "channel", "category", "department", "district"])
    create_index("ix_events_type_at", "events", ["type", "at"])
    op.create_table(
        "dashboard_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=64), nullable=False),
        sa.Column("district", sa.String(length=64), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "channel", "category", "department", "district"),
    )
    op.create_table(
        "dashboard_days_built",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("dashboard_days_built")
    op.drop_table("dashboard_days")
    drop_index("ix_events_type_at", "events")
    drop_index("ix_requests_period", "requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("attributes")
