"""users.department: the department a department member belongs to, and sees

A department member's account now names one of config/departments.yaml; their inbox, search
and request pages show that department's requests only. Accounts made before have none, and
see nothing until an administrator gives them one (/admin/users).

Revision ID: 0016_user_department
Revises: 0015_given_codes
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_user_department"
down_revision = "0015_given_codes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("department", sa.String(64), nullable=True))  # no default: no rewrite


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("department")
