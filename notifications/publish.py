"""The publish path: store one notification per recipient, count it unread, then publish.

SQL is the source of truth: a notification is committed before it is published, so anything
the fast path (the broker) drops can be read back (`since`, `created_since`). Unread counts
are kept in their own table in the same transaction, so a badge never counts rows. This is
the path a product's backend drives at volume, so its statements are built once per dialect.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from databases import Database

from infra import jsonsafe
from infra.broker import Broker, stream_message
from infra.db import (
    bound,
    bound_list,
    dialect_insert,
    is_unique_violation,
    json_column,
    list_value,
    utcnow,
)
from infra.errors import HubError
from infra.metrics import NOTIFICATIONS_SENT
from notifications.model import CONTENT_FIELDS, Notification, new_notification_message
from notifications.scope import user_stream
from notifications.tables import idempotency_keys, notifications, unread_counts

MAX_RECIPIENTS = 1000

# The statements of the publish path, built once per SQL dialect (see `infra.db.bound`).


def _param(dialect: str, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    # In INSERT … SELECT, PostgreSQL types a bare parameter as text; SQLite needs no cast
    # (and would give CAST(… AS JSON) numeric affinity).
    param = sa.bindparam(column.name, type_=column.type)
    return param if dialect == "sqlite" else sa.cast(param, column.type)


@functools.cache
def _insert_notifications(dialect: str) -> sa.ReturningInsert[Any]:
    """One notification per id in `user_ids`, all with the same content and time."""
    c = notifications.c
    recipients = bound_list(dialect, "user_ids", sa.BigInteger)
    copied = ["product_id", "env", "created_at", *CONTENT_FIELDS]
    return (
        notifications.insert()
        .from_select(
            ["user_id", *copied],
            sa.select(recipients.c.value, *(_param(dialect, c[name]) for name in copied)),
        )
        .returning(c.id, c.user_id)
    )


@functools.cache
def _add_unread(dialect: str) -> Any:
    """Add one to the unread count of each id in `user_ids` (distinct); the new counts."""
    c = unread_counts.c
    users = bound_list(dialect, "user_ids", sa.BigInteger)
    insert = dialect_insert(dialect, unread_counts).from_select(
        ["user_id", "product_id", "env", "count"],
        sa.select(
            users.c.value,
            _param(dialect, c.product_id),
            _param(dialect, c.env),
            sa.literal_column("1"),
        )
        # SQLite's grammar: INSERT … SELECT needs a WHERE before ON CONFLICT.
        .where(sa.true()),
    )
    return insert.on_conflict_do_update(
        index_elements=["product_id", "env", "user_id"], set_={"count": c.count + 1}
    ).returning(c.user_id, c.count)


def request_fingerprint(body: dict[str, Any]) -> str:
    canonical = jsonsafe.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class NotificationPublisher:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    async def send(
        self,
        *,
        product_id: int,
        env: str,
        recipients: Mapping[int, str],
        content: dict[str, Any],
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """Store one notification per recipient (user id → locale of its message), then
        publish them; (response, replayed?).

        With an `idempotency_key`, a retry of the same request returns the first answer and
        stores nothing; the same key with a different request is a 409.
        """
        if idempotency_key:
            stored = await self._idempotent_answer(product_id, env, idempotency_key, fingerprint)
            if stored is not None:
                return stored, True
        try:
            created, counts = await self._store(
                product_id, env, list(recipients), content, idempotency_key, fingerprint
            )
        except Exception as exc:
            if idempotency_key and is_unique_violation(exc):
                # A concurrent request with the same key committed first.
                stored = await self._idempotent_answer(
                    product_id, env, idempotency_key, fingerprint
                )
                if stored is not None:
                    return stored, True
            raise
        await self.broker.publish_many(
            [
                (
                    user_stream(product_id, env, n.user_id),
                    stream_message(
                        new_notification_message(n, counts[n.user_id], recipients[n.user_id]),
                        offset=n.id,
                    ),
                )
                for n in created
            ]
        )
        NOTIFICATIONS_SENT.inc(len(created))
        return _send_answer(created), False

    async def _idempotent_answer(
        self, product_id: int, env: str, key: str, fingerprint: str
    ) -> dict[str, Any] | None:
        row = await self.db.fetch_one(
            idempotency_keys.select().where(
                idempotency_keys.c.product_id == product_id,
                idempotency_keys.c.env == env,
                idempotency_keys.c.key == key,
            )
        )
        if row is None:
            return None
        if row._mapping["request_hash"] != fingerprint:
            raise HubError(409, "idempotency.conflict")
        return json_column(row._mapping["response"])

    async def _store(
        self,
        product_id: int,
        env: str,
        user_ids: list[int],
        content: dict[str, Any],
        idempotency_key: str | None,
        fingerprint: str,
    ) -> tuple[list[Notification], dict[int, int]]:
        now = utcnow()
        async with self.db.transaction():
            key_id = None
            if idempotency_key:
                key_id = await self.db.execute(
                    idempotency_keys.insert().values(
                        product_id=product_id,
                        env=env,
                        key=idempotency_key,
                        request_hash=fingerprint,
                        created_at=now,
                    )
                )
            dialect = self.db.url.dialect
            bound_ids = list_value(dialect, user_ids)
            rows = await self.db.fetch_all(
                bound(
                    _insert_notifications(dialect),
                    product_id=product_id,
                    env=env,
                    user_ids=bound_ids,
                    created_at=now,
                    **{name: content.get(name) for name in CONTENT_FIELDS},
                )
            )
            created = [
                Notification(
                    id=row[0],
                    user_id=row[1],
                    title=content["title"],
                    message=content.get("message") or "",
                    url=content.get("url"),
                    type=content.get("type"),
                    data=content.get("data"),
                    created_at=now,
                    read_at=None,
                )
                for row in rows
            ]
            upserted = await self.db.fetch_all(
                bound(_add_unread(dialect), product_id=product_id, env=env, user_ids=bound_ids)
            )
            counts = {row[0]: row[1] for row in upserted}
            if key_id is not None:
                await self.db.execute(
                    idempotency_keys.update()
                    .where(idempotency_keys.c.id == key_id)
                    .values(response=_send_answer(created))
                )
        return created, counts


def _send_answer(created: list[Notification]) -> dict[str, Any]:
    return {
        "notifications": [{"id": n.id, "user_id": n.user_id} for n in created],
        "count": len(created),
    }
