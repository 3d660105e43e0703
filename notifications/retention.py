"""Retention: delete notifications and idempotency keys older than a cut-off, in small batches.

Every notification is kept until it is deleted, so without pruning the largest table grows
with every publish for as long as the hub runs. `notification-hub prune` (run it from cron or
a scheduler) deletes what is older than the retention the operator chose.

Each batch is its own short transaction, so publishing, reading and marking go on while a
prune runs on a live database. Batches are taken from the oldest id up: ids grow with time, so
the primary key finds the old rows without an index on `created_at` (which would tax every
publish). A pruned notification that was still unread leaves its user's unread count in the
same transaction, so badges stay exact; one that a user marks read meanwhile is either
deleted already (the mark finds nothing) or read before the delete sees it (nothing to
subtract).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from notifications.tables import idempotency_keys, notifications, unread_counts

PRUNE_BATCH = 2000


@dataclass(frozen=True)
class Pruned:
    notifications: int
    idempotency_keys: int


async def prune(
    db: Database,
    *,
    notifications_before: datetime,
    idempotency_keys_before: datetime,
    batch: int = PRUNE_BATCH,
) -> Pruned:
    """Delete notifications created before `notifications_before` and idempotency keys (the
    replayable answers of publish requests) created before `idempotency_keys_before`."""
    deleted = 0
    while count := await _prune_notifications_batch(db, notifications_before, batch):
        deleted += count
    keys = 0
    while count := await _prune_keys_batch(db, idempotency_keys_before, batch):
        keys += count
    return Pruned(notifications=deleted, idempotency_keys=keys)


async def _prune_notifications_batch(db: Database, before: datetime, batch: int) -> int:
    n = notifications.c
    oldest = sa.select(n.id).where(n.created_at < before).order_by(n.id).limit(batch)
    async with db.transaction():
        rows = await db.fetch_all(
            notifications.delete()
            .where(n.id.in_(oldest.scalar_subquery()))
            .returning(n.product_id, n.env, n.user_id, n.read_at)
        )
        unread = Counter((row[0], row[1], row[2]) for row in rows if row[3] is None)
        c = unread_counts.c
        for (product_id, env, user_id), count in unread.items():
            await db.execute(
                unread_counts.update()
                .where(c.product_id == product_id, c.env == env, c.user_id == user_id)
                .values(count=sa.case((c.count > count, c.count - count), else_=0))
            )
    return len(rows)


async def _prune_keys_batch(db: Database, before: datetime, batch: int) -> int:
    k = idempotency_keys.c
    oldest = sa.select(k.id).where(k.created_at < before).order_by(k.id).limit(batch)
    async with db.transaction():
        rows = await db.fetch_all(
            idempotency_keys.delete().where(k.id.in_(oldest.scalar_subquery())).returning(k.id)
        )
    return len(rows)
