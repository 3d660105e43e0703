"""alert destinations: email to owners and admins, a Slack incoming webhook

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 09:40:00.000000

Besides the JSON webhook, a product's security alerts may be mailed to its console owners and
admins (`alert_email`) and posted to a Slack-compatible incoming webhook (`alert_slack_url`).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("alert_email", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("alert_slack_url", sa.String(length=2000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("alert_slack_url")
        batch_op.drop_column("alert_email")
