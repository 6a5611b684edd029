"""citizens.forgotten_at, and followers by citizen: the retention of citizens' personal data

A citizen whose requests all ended GATEWAY_RETENTION_DAYS ago is forgotten (gateway/retention.py):
name and contact points erased, the time recorded here. Whether a citizen still follows an
open request is looked up by citizen, hence the index.

Revision ID: 0017_citizen_retention
Revises: 0016_user_department
"""

import sqlalchemy as sa
from alembic import op

from gateway.migrating import create_index, drop_index

revision = "0017_citizen_retention"
down_revision = "0016_user_department"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("citizens", sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=True))
    create_index("ix_followers_citizen", "followers", ["citizen_id"])  # CONCURRENTLY on PostgreSQL


def downgrade() -> None:
    drop_index("ix_followers_citizen", "followers")
    with op.batch_alter_table("citizens") as batch:
        batch.drop_column("forgotten_at")
