"""attachments fetched by a job (MMS media, call recordings): fetch state, attempts, error

Revision ID: 0003_twilio
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0003_twilio"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fetch_state", sa.String(length=12), nullable=False, server_default="stored"))
        batch_op.add_column(sa.Column("fetch_attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("fetch_error", sa.Text(), nullable=True))
        batch_op.create_index("ix_attachments_fetch_state", ["fetch_state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index("ix_attachments_fetch_state")
        batch_op.drop_column("fetch_error")
        batch_op.drop_column("fetch_attempts")
        batch_op.drop_column("fetch_state")
