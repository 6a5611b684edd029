"""given_codes: a code given for a message that joined another request leads there

A citizen's SMS is answered with a new code before it is processed; when the pipeline then
adds it to one of their open requests (the same problem again) that code named no request.
given_codes maps it to the request the message joined (gateway/tracking.py). Filled here
with the messages already joined that way.

Revision ID: 0015_given_codes
Revises: 0014_delivery_external_id
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_given_codes"
down_revision = "0014_delivery_external_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "given_codes",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("request_id", sa.Integer, sa.ForeignKey("requests.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_given_codes_request_id", "given_codes", ["request_id"])  # a new table: nothing waits
    op.execute("""
        INSERT INTO given_codes (code, request_id, created_at)
        SELECT inbound_messages.reserved_code, inbound_messages.request_id, MIN(inbound_messages.processed_at)
        FROM inbound_messages JOIN requests ON requests.id = inbound_messages.request_id
        WHERE inbound_messages.reserved_code IS NOT NULL AND inbound_messages.processed_at IS NOT NULL
          AND requests.code <> inbound_messages.reserved_code
          AND NOT EXISTS (SELECT 1 FROM requests AS own WHERE own.code = inbound_messages.reserved_code)
        GROUP BY inbound_messages.reserved_code, inbound_messages.request_id
    """)


def downgrade() -> None:
    op.drop_index("ix_given_codes_request_id", "given_codes")
    op.drop_table("given_codes")
