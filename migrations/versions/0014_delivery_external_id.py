"""deliveries: indexed by the provider's id of what was sent

Twilio's delivery reports (one or more per SMS sent), replies in a department's Slack
thread and a citizen's reply to a bot message find their delivery by the id the provider
gave it; without an index each of them read the whole outbox.

Revision ID: 0014_delivery_external_id
Revises: 0013_contact_point_value
"""

from gateway.migrating import create_index, drop_index


revision = "0014_delivery_external_id"
down_revision = "0013_contact_point_value"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index("ix_deliveries_external_id", "deliveries", ["external_id"])


def downgrade() -> None:
    drop_index("ix_deliveries_external_id", "deliveries")
