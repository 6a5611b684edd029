"""sinks: SLA marks, request links, remote status of deliveries

Revision ID: 0006_sinks
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_sinks"
down_revision = "0005_social"  # chained after 0005 when merged
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("sla_state", sa.String(length=12), nullable=True))
        batch.add_column(sa.Column("related_to_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_requests_related_to", "requests", ["related_to_id"], ["id"])
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("remote_status", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("polled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("polled_at")
        batch.drop_column("remote_status")
    with op.batch_alter_table("requests") as batch:
        batch.drop_constraint("fk_requests_related_to", type_="foreignkey")
        batch.drop_column("related_to_id")
        batch.drop_column("sla_state")
