"""The publish path: store one notification per recipient, count it unread, then publish.

SQL is the source of truth: a notification is committed before it is published, so anything
the fast path (the broker) drops can be read back (`since`, `created_since`). Unread counts
are kept in their own table in the same transaction, so a badge never counts rows. This is
the path a product's backend drives at volume, so its statements are built once per dialect.

Group commit: most backends send one request per event, and a transaction per request made
the commit, not the work, the limit (about ten round trips and a commit each). Requests that
arrive while a batch is being stored wait for the next one, which stores all of them in one
transaction (one insert per table) and publishes all their messages in one broker round trip.
A lone request goes at once: nothing waits for a timer. Each request is answered only after
the batch holding it committed; a batch that fails fails every request in it, and nothing of
it is published. Requests with an Idempotency-Key are settled on their own (their own
transaction, as before): a key already taken is a unique violation, which inside a batch
would fail every other request with it. So are bulk requests (over GROUPED_MAX_RECIPIENTS):
they share a commit among their own notifications already, and run beside the batches
instead of holding small requests behind them.

The module is longer than most (about 430 lines) because the batcher, the statements it runs
and the answer it builds are one mechanism: each batch's rows, inserts and published messages
must agree, and reading them side by side is how that is checked.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects.postgresql import ARRAY

from infra import jsonsafe
from infra.broker import Broker, stream_message
from infra.db import bound, dialect_insert, is_unique_violation, json_column, utcnow
from infra.errors import HubError
from infra.metrics import NOTIFICATIONS_SENT, PUBLISH_BATCH, PUBLISH_WAITING
from notifications.model import Notification, new_notification_message
from notifications.scope import user_stream
from notifications.tables import idempotency_keys, notifications, unread_counts

logger = logging.getLogger("hub.publish")

MAX_RECIPIENTS = 1000
# The bounds of one group commit: a batch takes waiting requests until either is reached
# (one bulk request of MAX_RECIPIENTS still goes alone), so no transaction grows unbounded.
MAX_BATCH_REQUESTS = 256
MAX_BATCH_NOTIFICATIONS = 2000
# Requests naming more recipients than this are stored in a transaction of their own: a bulk
# request already shares one commit among its notifications, and queued in a batch it would
# hold every small request behind it (one tenant's bulk flood delaying another's single
# notifications), where alone it runs beside them.
GROUPED_MAX_RECIPIENTS = 100

# The statements of the publish path, built once per SQL dialect (see `infra.db.bound`).
# Each takes its rows as one list parameter per column (`_rows_value`), so its SQL text is the
# same for any number of rows: compiled once, unpacked by the database in C.

_NOTIFICATION_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine]], ...] = (
    ("product_id", sa.BigInteger),
    ("env", sa.String),
    ("user_id", sa.BigInteger),
    ("title", sa.String),
    ("message", sa.String),
    ("url", sa.String),
    ("type", sa.String),
    ("data", sa.String),  # JSON text: cast to the column's type in SQL
)
_UNREAD_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine]], ...] = (
    ("product_id", sa.BigInteger),
    ("env", sa.String),
    ("user_id", sa.BigInteger),
    ("count", sa.BigInteger),
)


def _bound_rows(
    dialect: str, columns: tuple[tuple[str, type[sa.types.TypeEngine]], ...]
) -> sa.FromClause:
    """A table of these columns plus `n` (the row's position), from the rows bound as
    parameter `rows`: `unnest` of one array per column WITH ORDINALITY on PostgreSQL, a JSON
    array of rows through `json_each` on SQLite."""
    if dialect == "sqlite":
        each = sa.func.json_each(sa.bindparam("rows", type_=sa.String)).table_valued("key", "value")
        return sa.select(
            *(
                sa.func.json_extract(each.c.value, f"$[{i}]").label(name)
                for i, (name, _) in enumerate(columns)
            ),
            each.c.key.label("n"),
        ).subquery()
    arrays = [sa.cast(sa.bindparam(name, type_=ARRAY(kind)), ARRAY(kind)) for name, kind in columns]
    return (
        sa.func.unnest(*arrays)
        .table_valued(*(name for name, _ in columns), with_ordinality="n")
        .render_derived()
    )


def _rows_value(dialect: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> dict:
    """The parameters of `_bound_rows` for these rows."""
    if dialect == "sqlite":
        return {"rows": json.dumps(rows)}
    by_column = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
    return {name: list(values) for name, values in zip(columns, by_column, strict=True)}


@functools.cache
def _insert_notifications(dialect: str) -> sa.ReturningInsert[Any]:
    """One notification per row, all created at `created_at`; (id, user_id) of each. Rows go
    in in their order (ORDER BY n), so ids ascend in that order."""
    rows = _bound_rows(dialect, _NOTIFICATION_COLUMNS)
    c = notifications.c
    names = [name for name, _ in _NOTIFICATION_COLUMNS]
    values = [rows.c[name] for name in names[:-1]]
    values.append(sa.cast(rows.c.data, c.data.type) if dialect != "sqlite" else rows.c.data)
    created_at = sa.bindparam("created_at", type_=c.created_at.type)
    return (
        notifications.insert()
        .from_select(
            [*names, "created_at"],
            sa.select(
                *values,
                created_at if dialect == "sqlite" else sa.cast(created_at, c.created_at.type),
            ).order_by(rows.c.n),
        )
        .returning(c.id, c.user_id)
    )


@functools.cache
def _add_unread(dialect: str) -> Any:
    """Add each row's `count` to the unread count of its (product, env, user), one row per
    user, in key order (concurrent batches lock the rows in the same order); the new counts."""
    rows = _bound_rows(dialect, _UNREAD_COLUMNS)
    c = unread_counts.c
    insert = dialect_insert(dialect, unread_counts).from_select(
        ["product_id", "env", "user_id", "count"],
        sa.select(rows.c.product_id, rows.c.env, rows.c.user_id, rows.c.count)
        # SQLite's grammar: INSERT … SELECT needs a WHERE before ON CONFLICT.
        .where(sa.true())
        .order_by(rows.c.product_id, rows.c.env, rows.c.user_id),
    )
    return insert.on_conflict_do_update(
        index_elements=["product_id", "env", "user_id"],
        set_={"count": c.count + insert.excluded.count},
    ).returning(c.product_id, c.env, c.user_id, c.count)


def request_fingerprint(body: dict[str, Any]) -> str:
    canonical = jsonsafe.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(slots=True)
class _Send:
    """One request's notifications: who gets them, what they say; `stored` is settled with
    what was committed (or the batch's failure)."""

    product_id: int
    env: str
    recipients: Mapping[int, str]  # user id → locale of its message
    content: dict[str, Any]
    stored: asyncio.Future[list[tuple[Notification, int]]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def not_stored() -> HubError:
    """The answer of every request of a batch whose transaction failed: nothing was stored
    or sent, and the same request may simply be sent again."""
    return HubError(503, "notification.not_stored", headers={"Retry-After": "1"})


class NotificationPublisher:
    def __init__(self, db: Database, broker: Broker) -> None:
        self.db = db
        self.broker = broker
        self._waiting: collections.deque[_Send] = collections.deque()
        self._committer: asyncio.Task[None] | None = None

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
        publish them; (response, replayed?). 503 `notification.not_stored` if the batch it
        went in failed (nothing of it was stored or sent).

        With an `idempotency_key`, a retry of the same request returns the first answer and
        stores nothing; the same key with a different request is a 409.
        """
        send = _Send(product_id, env, recipients, content)
        if not idempotency_key and len(recipients) <= GROUPED_MAX_RECIPIENTS:
            self._waiting.append(send)
            PUBLISH_WAITING.set(len(self._waiting))
            if self._committer is None:
                self._committer = asyncio.create_task(self._commit_waiting(), name="publish")
            created = await send.stored
            return _send_answer([n for n, _ in created]), False
        try:
            return await self._send_alone(send, idempotency_key, fingerprint)
        except HubError:
            raise
        except Exception:
            # The database failed under it. Its notifications (and its key's row) are one
            # transaction: either all are stored (a retry with the key replays) or none.
            logger.exception("a publish request stored alone failed")
            raise not_stored() from None

    async def _send_alone(
        self, send: _Send, idempotency_key: str | None, fingerprint: str
    ) -> tuple[dict[str, Any], bool]:
        """A bulk or idempotent request, in a transaction of its own."""
        product_id, env = send.product_id, send.env
        if idempotency_key:
            stored = await self._idempotent_answer(product_id, env, idempotency_key, fingerprint)
            if stored is not None:
                return stored, True
        try:
            async with self.db.transaction():
                [created] = await self._store(
                    [send], (idempotency_key, fingerprint) if idempotency_key else None
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
        try:
            await self._publish([send], [created])
        except Exception:
            # Stored all the same: subscribers read it back from SQL (`since`).
            logger.exception("publishing a stored notification failed")
        return _send_answer([n for n, _ in created]), False

    async def _commit_waiting(self) -> None:
        """Store and publish the waiting requests, a batch at a time, until none wait.

        Its own task: a request cancelled while it waits leaves its batch intact."""
        batch: list[_Send] = []
        try:
            while self._waiting:
                batch = self._next_batch()
                PUBLISH_WAITING.set(len(self._waiting))
                PUBLISH_BATCH.observe(len(batch))
                try:
                    async with self.db.transaction():
                        created = await self._store(batch)
                except Exception:
                    logger.exception("a batch of %d publish requests failed", len(batch))
                    for send in batch:
                        if not send.stored.done():
                            send.stored.set_exception(not_stored())
                    continue
                try:
                    await self._publish(batch, created)
                except Exception:
                    # Stored all the same: subscribers read it back from SQL (`since`).
                    logger.exception("publishing a stored batch failed")
                for send, stored in zip(batch, created, strict=True):
                    if not send.stored.done():
                        send.stored.set_result(stored)
        finally:
            self._committer = None
            # Only a cancelled task (the process stopping) leaves requests unanswered: whether
            # their batch committed is unknown, so they are not told it failed.
            for send in [*batch, *self._waiting]:
                if not send.stored.done():
                    send.stored.cancel()

    def _next_batch(self) -> list[_Send]:
        batch = [self._waiting.popleft()]
        size = len(batch[0].recipients)
        while self._waiting and len(batch) < MAX_BATCH_REQUESTS:
            size += len(self._waiting[0].recipients)
            if size > MAX_BATCH_NOTIFICATIONS:
                break
            batch.append(self._waiting.popleft())
        return batch

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
        self, sends: list[_Send], idempotency: tuple[str, str] | None = None
    ) -> list[list[tuple[Notification, int]]]:
        """Insert the notifications of `sends` and count them unread, inside the caller's
        transaction; per send, its (notification, unread count after it) pairs.

        `idempotency` (key, fingerprint) of a lone send stores its key and answer with it."""
        now = utcnow()
        dialect = self.db.url.dialect
        key_id = None
        if idempotency is not None:
            [send] = sends
            key_id = await self.db.execute(
                idempotency_keys.insert().values(
                    product_id=send.product_id,
                    env=send.env,
                    key=idempotency[0],
                    request_hash=idempotency[1],
                    created_at=now,
                )
            )
        rows = [
            (
                send.product_id,
                send.env,
                user_id,
                send.content["title"],
                send.content.get("message"),
                send.content.get("url"),
                send.content.get("type"),
                _json_text(send.content.get("data")),
            )
            for send in sends
            for user_id in send.recipients
        ]
        inserted = await self.db.fetch_all(
            bound(
                _insert_notifications(dialect),
                created_at=now,
                **_rows_value(dialect, [name for name, _ in _NOTIFICATION_COLUMNS], rows),
            )
        )
        ids = sorted(row[0] for row in inserted)  # ids ascend in the order the rows went in
        added: collections.Counter[tuple[int, str, int]] = collections.Counter(
            (row[0], row[1], row[2]) for row in rows
        )
        upserted = await self.db.fetch_all(
            bound(
                _add_unread(dialect),
                **_rows_value(
                    dialect,
                    [name for name, _ in _UNREAD_COLUMNS],
                    [(*user, count) for user, count in added.items()],
                ),
            )
        )
        # The count each notification leaves: a user's first in this batch sees the count
        # before the batch plus one, the next plus two, up to the count after the batch.
        counted = {
            (row[0], row[1], row[2]): row[3] - added[row[0], row[1], row[2]] for row in upserted
        }
        created: list[list[tuple[Notification, int]]] = []
        position = 0
        for send in sends:
            own = []
            for user_id in send.recipients:
                user = (send.product_id, send.env, user_id)
                counted[user] += 1
                own.append(
                    (_notification(ids[position], user_id, send.content, now), counted[user])
                )
                position += 1
            created.append(own)
        if key_id is not None:
            await self.db.execute(
                idempotency_keys.update()
                .where(idempotency_keys.c.id == key_id)
                .values(response=_send_answer([n for n, _ in created[0]]))
            )
        return created

    async def _publish(
        self, sends: list[_Send], created: list[list[tuple[Notification, int]]]
    ) -> None:
        """Publish what `sends` committed, all in one broker round trip."""
        messages = [
            (
                user_stream(send.product_id, send.env, n.user_id),
                stream_message(
                    new_notification_message(n, unread, send.recipients[n.user_id]), offset=n.id
                ),
            )
            for send, stored in zip(sends, created, strict=True)
            for n, unread in stored
        ]
        await self.broker.publish_many(messages)
        NOTIFICATIONS_SENT.inc(len(messages))


def _json_text(value: Any) -> str | None:
    return None if value is None else jsonsafe.dumps(value)


def _notification(id: int, user_id: int, content: dict[str, Any], now: datetime) -> Notification:
    return Notification(
        id=id,
        user_id=user_id,
        title=content["title"],
        message=content.get("message") or "",
        url=content.get("url"),
        type=content.get("type"),
        data=content.get("data"),
        created_at=now,
        read_at=None,
    )


def _send_answer(created: list[Notification]) -> dict[str, Any]:
    return {
        "notifications": [{"id": n.id, "user_id": n.user_id} for n in created],
        "count": len(created),
    }
