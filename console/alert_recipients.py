"""Who is mailed a product's security alerts: its console owners and admins.

The auth floor decides that an alert goes out and to which destinations
(`auth.alert_destinations`); it asks this class, through the `AlertRecipients` protocol, whose
inbox "email to the owners and admins" means. Disabled accounts are left out. Console admins
are not mailed for every product (they act as owners but are not members), except for a
product with no owner or admin member at all (one made with `products create`, say): its
alerts go to the console admins rather than to nobody.
"""

from __future__ import annotations

import sqlalchemy as sa
from databases import Database

from auth.alert_destinations import MAX_MAIL_RECIPIENTS
from console.tables import console_accounts, console_members

ALERT_ROLES = ("owner", "admin")


class ConsoleAlertRecipients:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def alert_emails(self, product_id: int) -> list[str]:
        """The emails of the product's enabled owner and admin members, oldest member first;
        the console admins' if it has none."""
        members = await self._db.fetch_all(
            sa.select(console_accounts.c.email)
            .join(console_members, console_members.c.account_id == console_accounts.c.id)
            .where(
                console_members.c.product_id == product_id,
                console_members.c.role.in_(ALERT_ROLES),
                console_accounts.c.disabled_at.is_(None),
            )
            .order_by(console_members.c.id)
            .limit(MAX_MAIL_RECIPIENTS)
        )
        if members:
            return [row.email for row in members]
        admins = await self._db.fetch_all(
            sa.select(console_accounts.c.email)
            .where(console_accounts.c.is_admin, console_accounts.c.disabled_at.is_(None))
            .order_by(console_accounts.c.id)
            .limit(MAX_MAIL_RECIPIENTS)
        )
        return [row.email for row in admins]
