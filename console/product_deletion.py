"""Deleting a product, everything of it across the floors, in one transaction: its
notifications, its console members and invitations, then the auth floor's rows (keys,
organizations, sessions, …; the identity pool and its users only when no other product uses
it). The audit log keeps its rows (they have no foreign key): the deletion is one of them.

Once committed, every hub process is told: the product's cached keys are forgotten (they are
refused from the next request on) and its live sessions' sockets close.
"""

from __future__ import annotations

from databases import Database

from auth import product_deletion
from auth.products import Product
from auth.services import AuthServices
from console.tables import console_invitations, console_members
from notifications.removal import delete_product_notifications


async def delete_product(db: Database, auth: AuthServices, product: Product) -> bool:
    """Delete `product`; whether its identity pool (and its users) went with it."""
    async with db.transaction():
        gone = await product_deletion.doomed(db, product)
        await delete_product_notifications(db, product.id, gone.users)
        for table in (console_invitations, console_members):
            await db.execute(table.delete().where(table.c.product_id == product.id))
        await product_deletion.delete_product_rows(db, product, gone)
    await auth.credentials.product_changed(product.id)
    await auth.tokens.revoked(gone.live_session_ids)
    return gone.users is not None
