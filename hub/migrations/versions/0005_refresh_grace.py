"""refresh grace used at most once

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 19:00:00.000000

A refresh session remembers whether its just-retired token has had its one grace use.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("grace_used", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_column("grace_used")
