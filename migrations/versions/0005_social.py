"""Messenger and Telegram: the 24-hour window, chat replies that concern no request

Revision ID: 0005_social
Revises: 0003_twilio
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_social'
down_revision = '0004_email'  # chained after 0004 when merged
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('request_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE request_id IS NULL")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('request_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.drop_column('last_inbound_at')
