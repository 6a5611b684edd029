"""inbound messages waiting, in the order received: the pipeline's batches and the sweeper

Revision ID: 0010_pipeline
Revises: 0009_open311
"""

from gateway.migrating import create_index, drop_index


revision = "0010_pipeline"
down_revision = "0009_open311"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # "state = 'received' ORDER BY id LIMIT n" reads n index entries, however many messages
    # were processed before them (the index on state alone leaves PostgreSQL a sort).
    create_index("ix_inbound_messages_state_id", "inbound_messages", ["state", "id"])


def downgrade() -> None:
    drop_index("ix_inbound_messages_state_id", "inbound_messages")
