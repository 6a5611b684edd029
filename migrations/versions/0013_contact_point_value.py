"""contact points: indexed by value alone

A message's sender is looked up by the values of its contact points (one phone number,
one address…), whatever their kind; the unique key (kind, value) cannot serve that, and
each look-up read every contact point of every citizen.

Revision ID: 0013_contact_point_value
Revises: 0012_citizen_requests
"""

from gateway.migrating import create_index, drop_index


revision = "0013_contact_point_value"
down_revision = "0012_citizen_requests"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index("ix_contact_points_value", "contact_points", ["value"])


def downgrade() -> None:
    drop_index("ix_contact_points_value", "contact_points")
