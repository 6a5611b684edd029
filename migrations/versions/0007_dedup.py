"""dedup: blocking index columns on requests, suggestions for agents

Revision ID: 0007_dedup
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0007_dedup"
down_revision = "0006_sinks"  # chained after 0006 when merged
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch_op:
        batch_op.add_column(sa.Column("dedup_cell", sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column("dedup_street", sa.String(length=120), nullable=True))
        batch_op.create_index("ix_requests_dedup_cell", ["category", "dedup_cell", "created_at"], unique=False)
        batch_op.create_index("ix_requests_dedup_street", ["category", "dedup_street", "created_at"], unique=False)
    op.create_table(
        "dedup_suggestions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("candidate_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["requests.id"]),
        sa.ForeignKeyConstraint(["candidate_id"], ["requests.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "candidate_id", name="uq_dedup_suggestion"),
    )
    with op.batch_alter_table("dedup_suggestions") as batch_op:
        batch_op.create_index("ix_dedup_suggestions_request_id", ["request_id"], unique=False)
        batch_op.create_index("ix_dedup_suggestions_candidate_id", ["candidate_id"], unique=False)
        batch_op.create_index("ix_dedup_suggestions_state", ["state", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_table("dedup_suggestions")
    with op.batch_alter_table("requests") as batch_op:
        batch_op.drop_index("ix_requests_dedup_street")
        batch_op.drop_index("ix_requests_dedup_cell")
        batch_op.drop_column("dedup_street")
        batch_op.drop_column("dedup_cell")
