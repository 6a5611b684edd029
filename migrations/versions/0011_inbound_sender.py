"""inbound messages: the sender as the webhook read it (an SMS's phone number), to find
the sender's messages not processed yet

Revision ID: 0011_inbound_sender
Revises: 0010_pipeline
"""
import sqlalchemy as sa
from alembic import op

from gateway.migrating import create_index, drop_index


revision = "0011_inbound_sender"
down_revision = "0010_pipeline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A second SMS arriving before the first is processed continues the request the first
    # one's answer announced (its reserved code), instead of opening another.
    op.add_column("inbound_messages", sa.Column("sender", sa.String(255), nullable=True))
    create_index("ix_inbound_messages_sender", "inbound_messages", ["sender"])


def downgrade() -> None:
    drop_index("ix_inbound_messages_sender", "inbound_messages")
    op.drop_column("inbound_messages", "sender")
