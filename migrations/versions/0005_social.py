"""Messenger and Telegram: the 24-hour window, attachment fetching, replies without a request

Revision ID: 0005_social
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_social'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_inbound_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fetch_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('fetch_error', sa.Text(), nullable=True))
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('request_id', existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM deliveries WHERE request_id IS NULL")
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.alter_column('request_id', existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table('attachments', schema=None) as batch_op:
        batch_op.drop_column('fetch_error')
        batch_op.drop_column('fetch_attempts')
    with op.batch_alter_table('contact_points', schema=None) as batch_op:
        batch_op.drop_column('last_inbound_at')
