"""inbound messages waiting, in the order received: the pipeline's batches and the sweeper

Revision ID: 0010_pipeline
Revises: 0009_open311
"""
from alembic import op


revision = "0010_pipeline"
down_revision = "0009_open311"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "state = 'received' ORDER BY id LIMIT n" reads n index entries, however many messages
    # were processed before them (the index on state alone leaves PostgreSQL a sort).
    op.create_index("ix_inbound_messages_state_id", "inbound_messages", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_state_id", table_name="inbound_messages")
