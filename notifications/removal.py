"""Deleting a product's notifications, unread counts and idempotency keys (and those of the
users that go with it), for the console's product deletion.

It takes the caller's database handle and runs inside the caller's transaction, before the
users and the product themselves are deleted (SQLite does not enforce the foreign keys'
cascades, so nothing is left to them).
"""

from __future__ import annotations

import sqlalchemy as sa
from databases import Database

from notifications.tables import idempotency_keys, notifications, unread_counts


async def delete_product_notifications(
    db: Database, product_id: int, user_ids: sa.Select | None = None
) -> None:
    """Delete the product's rows, and every row of the users `user_ids` selects (None: no
    user goes)."""
    for table in (notifications, unread_counts):
        condition = table.c.product_id == product_id
        if user_ids is not None:
            condition = sa.or_(condition, table.c.user_id.in_(user_ids))
        await db.execute(table.delete().where(condition))
    await db.execute(idempotency_keys.delete().where(idempotency_keys.c.product_id == product_id))
