"""Store notifications, keep unread counts, and publish both to the users' streams.

SQL is the source of truth: a notification is committed before it is published, so anything
the fast path (the broker) drops can be read back (`since`, `created_since`). Unread counts
are kept in their own table in the same transaction, so a badge never counts rows.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from infra import jsonsafe
from infra.broker import Broker, stream_message
from infra.db import (
    as_utc,
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
from notifications.format import relative_time
from notifications.tables import idempotency_keys, notifications, unread_counts

MAX_RECIPIENTS = 1000
CONTENT_FIELDS = ("title", "message", "url", "type", "data")


def notifications_stream(product_id: int, env: str, user_id: int) -> str:
    """The stream of one user in one product environment.

    The product is part of the name because a user is one identity across products: without
    it, product B's notifications would reach the tabs of product A.
    """
    return f"notifications:{product_id}:{env}:{user_id}"


@dataclass(frozen=True)
class Notification:
    id: int
    user_id: int
    title: str
    message: str
    url: str | None
    type: str | None
    data: Any
    created_at: datetime
    read_at: datetime | None

    def public(self, locale: str, now: datetime | None = None) -> dict[str, Any]:
        """How clients see it: the Kiket seed's fields, `created_at` relative and localized
        as in the seed, plus the exact time (`created_at_iso`), the read state and `data`."""
        return {
            "id": self.id,
            "title": self.title,
            "message": self.message,
            "url": self.url,
            "type": self.type,
            "created_at": relative_time(self.created_at, now or utcnow(), locale),
            "created_at_iso": self.created_at.isoformat().replace("+00:00", "Z"),
            "read": self.read_at is not None,
            "data": self.data,
        }


@dataclass(frozen=True)
class Recipient:
    user_id: int
    locale: str


def _notification(row: object) -> Notification:
    m = row._mapping  # type: ignore[attr-defined]
    return Notification(
        id=m["id"],
        user_id=m["user_id"],
        title=m["title"],
        message=m["message"],
        url=m["url"],
        type=m["type"],
        # Rows stored before NaN/Infinity were refused would break every list of their user.
        data=jsonsafe.finite(json_column(m["data"])),
        created_at=as_utc(m["created_at"]),
        read_at=as_utc(m["read_at"]),
    )


def new_notification_message(notification: Notification, unread_count: int, locale: str) -> str:
    """The cable message for a new notification: the Kiket seed's shape, as a JSON string."""
    return jsonsafe.dumps(
        {
            "action": "new_notification",
            "unread_count": unread_count,
            "notification": notification.public(locale),
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


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


class NotificationService:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker

    def _owned(self, product_id: int, env: str, user_id: int) -> list[sa.ColumnElement[bool]]:
        return [
            notifications.c.product_id == product_id,
            notifications.c.env == env,
            notifications.c.user_id == user_id,
        ]

    # -- sending --------------------------------------------------------------------------

    async def send(
        self,
        *,
        product_id: int,
        env: str,
        recipients: Sequence[Recipient],
        content: dict[str, Any],
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> tuple[dict[str, Any], bool]:
        """Store one notification per recipient, then publish them; (response, replayed?).

        With an `idempotency_key`, a retry of the same request returns the first answer and
        stores nothing; the same key with a different request is a 409.
        """
        if idempotency_key:
            stored = await self._idempotent_answer(product_id, env, idempotency_key, fingerprint)
            if stored is not None:
                return stored, True
        try:
            created, counts = await self._store(
                product_id, env, recipients, content, idempotency_key, fingerprint
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
        locales = {r.user_id: r.locale for r in recipients}
        await self.broker.publish_many(
            [
                (
                    notifications_stream(product_id, env, n.user_id),
                    stream_message(
                        new_notification_message(n, counts[n.user_id], locales[n.user_id]),
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
        recipients: Sequence[Recipient],
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
            user_ids = list_value(dialect, [r.user_id for r in recipients])
            rows = await self.db.fetch_all(
                bound(
                    _insert_notifications(dialect),
                    product_id=product_id,
                    env=env,
                    user_ids=user_ids,
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
                bound(_add_unread(dialect), product_id=product_id, env=env, user_ids=user_ids)
            )
            counts = {row[0]: row[1] for row in upserted}
            if key_id is not None:
                await self.db.execute(
                    idempotency_keys.update()
                    .where(idempotency_keys.c.id == key_id)
                    .values(response=_send_answer(created))
                )
        return created, counts

    # -- reading --------------------------------------------------------------------------

    async def unread_count(self, product_id: int, env: str, user_id: int) -> int:
        value = await self.db.fetch_val(
            sa.select(unread_counts.c.count).where(
                unread_counts.c.product_id == product_id,
                unread_counts.c.env == env,
                unread_counts.c.user_id == user_id,
            )
        )
        return int(value or 0)

    async def page(
        self,
        product_id: int,
        env: str,
        user_id: int,
        *,
        before: int | None,
        limit: int,
        unread_only: bool,
    ) -> tuple[list[Notification], int | None]:
        """Newest first, `limit` at a time; the id to pass as `before` for the next page."""
        query = sa.select(notifications).where(*self._owned(product_id, env, user_id))
        if before is not None:
            query = query.where(notifications.c.id < before)
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))
        rows = await self.db.fetch_all(query.order_by(notifications.c.id.desc()).limit(limit + 1))
        items = [_notification(row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def since(
        self, product_id: int, env: str, user_id: int, since_id: int, limit: int
    ) -> tuple[list[Notification], bool]:
        """Notifications after `since_id`, oldest first, at most `limit`; (items, has_more)."""
        rows = await self.db.fetch_all(
            sa.select(notifications)
            .where(*self._owned(product_id, env, user_id), notifications.c.id > since_id)
            .order_by(notifications.c.id)
            .limit(limit + 1)
        )
        return [_notification(row) for row in rows[:limit]], len(rows) > limit

    async def created_since(
        self, product_id: int, env: str, user_id: int, since: datetime, limit: int
    ) -> list[Notification]:
        rows = await self.db.fetch_all(
            sa.select(notifications)
            .where(*self._owned(product_id, env, user_id), notifications.c.created_at >= since)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        return [_notification(row) for row in rows]

    # -- read state -----------------------------------------------------------------------

    async def mark_read(self, product_id: int, env: str, user_id: int, notification_id: int) -> int:
        """Mark one notification read; the new unread count. 404 if it is not the user's."""
        async with self.db.transaction():
            changed = await self.db.fetch_one(
                notifications.update()
                .where(
                    *self._owned(product_id, env, user_id),
                    notifications.c.id == notification_id,
                    notifications.c.read_at.is_(None),
                )
                .values(read_at=utcnow())
                .returning(notifications.c.id)
            )
            if changed is None:
                exists = await self.db.fetch_one(
                    sa.select(notifications.c.id).where(
                        *self._owned(product_id, env, user_id),
                        notifications.c.id == notification_id,
                    )
                )
                if exists is None:
                    raise HubError(404, "notification.not_found")
                return await self.unread_count(product_id, env, user_id)
            count = await self.db.fetch_val(
                unread_counts.update()
                .where(
                    unread_counts.c.product_id == product_id,
                    unread_counts.c.env == env,
                    unread_counts.c.user_id == user_id,
                )
                .values(
                    count=sa.case((unread_counts.c.count > 0, unread_counts.c.count - 1), else_=0)
                )
                .returning(unread_counts.c.count)
            )
        count = int(count or 0)
        await self._publish_state(
            product_id,
            env,
            user_id,
            {"action": "notification_read", "id": notification_id, "unread_count": count},
        )
        return count

    async def mark_all_read(self, product_id: int, env: str, user_id: int) -> int:
        async with self.db.transaction():
            await self.db.execute(
                notifications.update()
                .where(*self._owned(product_id, env, user_id), notifications.c.read_at.is_(None))
                .values(read_at=utcnow())
            )
            await self.db.execute(
                unread_counts.update()
                .where(
                    unread_counts.c.product_id == product_id,
                    unread_counts.c.env == env,
                    unread_counts.c.user_id == user_id,
                )
                .values(count=0)
            )
        await self._publish_state(
            product_id, env, user_id, {"action": "all_read", "unread_count": 0}
        )
        return 0

    async def _publish_state(
        self, product_id: int, env: str, user_id: int, message: dict[str, Any]
    ) -> None:
        # Every tab of the user hears it, so each badge stays right.
        await self.broker.publish(
            notifications_stream(product_id, env, user_id),
            stream_message(jsonsafe.dumps(message, separators=(",", ":"))),
        )


def _send_answer(created: list[Notification]) -> dict[str, Any]:
    return {
        "notifications": [{"id": n.id, "user_id": n.user_id} for n in created],
        "count": len(created),
    }
