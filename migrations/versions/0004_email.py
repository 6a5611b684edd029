"""e-mail intake: IMAP receipts (mailbox, UIDVALIDITY, UID, Message-ID) and mailbox state

Revision ID: 0004_email
Revises: 0003_twilio
Create Date: 2026-11-22 04:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_email'
down_revision = '0003_twilio'  # chained after main's 0003 when main was merged in
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('email_receipts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mailbox', sa.String(length=100), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=False),
    sa.Column('uid', sa.BigInteger(), nullable=False),
    sa.Column('message_key', sa.String(length=255), nullable=False),
    sa.Column('inbound_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['inbound_id'], ['inbound_messages.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mailbox', 'uidvalidity', 'uid', name='uq_email_receipt_uid'),
    sa.UniqueConstraint('mailbox', 'message_key', name='uq_email_receipt_message')
    )
    op.create_table('mailbox_states',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('uidvalidity', sa.BigInteger(), nullable=True),
    sa.Column('last_uid', sa.BigInteger(), nullable=False),
    sa.Column('last_success_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('mailbox_states')
    op.drop_table('email_receipts')
