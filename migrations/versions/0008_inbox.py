"""inbox and administrators' console: assignment, inbox indexes, config versions, login failures

Revision ID: 0008_inbox
Revises: 0001
"""
from alembic import op

from gateway.migrating import create_index, drop_index
import sqlalchemy as sa


revision = "0008_inbox"
down_revision = "0007_dedup"  # chained after 0007 when merged
branch_labels = None
depends_on = None

INDEXES = {
    "ix_requests_created": ["created_at", "id"],
    "ix_requests_urgency": ["priority", "created_at", "id"],
    "ix_requests_channel_created": ["channel", "created_at"],
    "ix_requests_department_created": ["department", "created_at"],
    "ix_requests_district_created": ["district", "created_at"],
    "ix_requests_assignee_created": ["assigned_to_id", "created_at"],
    "ix_requests_sla": ["sla_due_at"],
    "ix_requests_duplicate_of": ["duplicate_of_id"],
}


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("assigned_to_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_requests_assigned_to", "users", ["assigned_to_id"], ["id"])
    for name, columns in INDEXES.items():
        create_index(name, "requests", columns)
    op.create_table(
        "config_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=64), nullable=False),
        sa.Column("previous", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_config_versions_filename", "config_versions", ["filename"])
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_login_failures_key_at", "login_failures", ["key", "at"])


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_table("config_versions")
    for name in INDEXES:
        drop_index(name, "requests")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("fk_requests_assigned_to", type_="foreignkey")
        batch.drop_column("assigned_to_id")
