"""inbound_messages: indexed by the tracking code reserved for them

A code given to a citizen when their message arrived (an SMS's reply, a voicemail) leads to
the request that message joined when it did not become a request of its own
(gateway/tracking.py); the tracking page, STATUS and the chat bots look it up by that code.

Revision ID: 0015_inbound_reserved_code
Revises: 0014_delivery_external_id
"""

from gateway.migrating import create_index, drop_index


revision = "0015_inbound_reserved_code"
down_revision = "0014_delivery_external_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index("ix_inbound_messages_reserved_code", "inbound_messages", ["reserved_code"])


def downgrade() -> None:
    drop_index("ix_inbound_messages_reserved_code", "inbound_messages")
