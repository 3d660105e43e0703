"""The notifications service: the publish path (`notifications.publish`) plus reading a user's
notifications and changing their read state.

Reads and marks are per user, so each takes the `UserScope` it acts for; every change of read
state is published to the user's stream, so each open tab's badge stays right.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from auth.recipients import Recipient, resolve_recipients
from auth.tables import users
from infra import jsonsafe
from infra.broker import stream_message
from infra.db import utcnow
from infra.errors import HubError
from notifications.model import Notification
from notifications.publish import NotificationPublisher, not_stored
from notifications.scope import UserScope
from notifications.tables import notifications, unread_counts

logger = logging.getLogger("hub.publish")


def read_state(notification_id: int, unread_count: int) -> dict[str, Any]:
    """The message that says a notification is read, and how many are left unread."""
    return {"action": "notification_read", "id": notification_id, "unread_count": unread_count}


def _owned(scope: UserScope) -> list[sa.ColumnElement[bool]]:
    return [
        notifications.c.product_id == scope.product_id,
        notifications.c.env == scope.env,
        notifications.c.user_id == scope.user_id,
    ]


def _counted(scope: UserScope) -> list[sa.ColumnElement[bool]]:
    return [
        unread_counts.c.product_id == scope.product_id,
        unread_counts.c.env == scope.env,
        unread_counts.c.user_id == scope.user_id,
    ]


class NotificationService(NotificationPublisher):
    # -- recipients -----------------------------------------------------------------------

    async def recipients(
        self,
        product_id: int,
        env: str,
        *,
        user_ids: Sequence[int] = (),
        emails: Sequence[str] = (),
        external_ids: Sequence[str] = (),
        organization_id: int | None = None,
    ) -> dict[tuple[str, object], Recipient]:
        """The users of this product environment (and organization, for an org credential)
        that these names name, by (key, value); anyone else is absent. Here so that routes
        ask the service and never hold the database handle.

        The publish path's first step: if the database fails here, nothing is stored yet, so
        the answer is 503 `notification.not_stored` (send the same request again), not 500.
        """
        try:
            return await resolve_recipients(
                self.db,
                product_id,
                env,
                user_ids=user_ids,
                emails=emails,
                external_ids=external_ids,
                organization_id=organization_id,
            )
        except Exception:
            logger.exception("looking up the recipients of a publish request failed")
            raise not_stored() from None

    # -- reading --------------------------------------------------------------------------

    async def unread_count(self, scope: UserScope) -> int:
        value = await self.db.fetch_val(sa.select(unread_counts.c.count).where(*_counted(scope)))
        return int(value or 0)

    async def page(
        self, scope: UserScope, *, before: int | None, limit: int, unread_only: bool
    ) -> tuple[list[Notification], int | None]:
        """Newest first, `limit` at a time; the id to pass as `before` for the next page."""
        query = sa.select(notifications).where(*_owned(scope))
        if before is not None:
            query = query.where(notifications.c.id < before)
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))
        rows = await self.db.fetch_all(query.order_by(notifications.c.id.desc()).limit(limit + 1))
        items = [Notification.from_row(row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def since(
        self, scope: UserScope, since_id: int, limit: int
    ) -> tuple[list[Notification], bool]:
        """Notifications after `since_id`, oldest first, at most `limit`; (items, has_more)."""
        rows = await self.db.fetch_all(
            sa.select(notifications)
            .where(*_owned(scope), notifications.c.id > since_id)
            .order_by(notifications.c.id)
            .limit(limit + 1)
        )
        return [Notification.from_row(row) for row in rows[:limit]], len(rows) > limit

    async def created_since(
        self, scope: UserScope, since: datetime, limit: int
    ) -> list[Notification]:
        rows = await self.db.fetch_all(
            sa.select(notifications)
            .where(*_owned(scope), notifications.c.created_at >= since)
            .order_by(notifications.c.id)
            .limit(limit)
        )
        return [Notification.from_row(row) for row in rows]

    # -- the console's log of a product environment ---------------------------------------

    async def product_log(
        self,
        product_id: int,
        env: str,
        *,
        before: int | None,
        limit: int,
        user_id: int | None = None,
    ) -> tuple[list[Notification], int | None]:
        """A product environment's notifications (one user's, with `user_id`), newest first,
        `limit` at a time; the id to pass as `before` for the next page."""
        query = sa.select(notifications).where(
            notifications.c.product_id == product_id, notifications.c.env == env
        )
        if user_id is not None:
            query = query.where(notifications.c.user_id == user_id)
        if before is not None:
            query = query.where(notifications.c.id < before)
        rows = await self.db.fetch_all(query.order_by(notifications.c.id.desc()).limit(limit + 1))
        items = [Notification.from_row(row) for row in rows[:limit]]
        return items, (items[-1].id if len(rows) > limit else None)

    async def user_emails(self, user_ids: Sequence[int]) -> dict[int, str | None]:
        """The email of each of these users (None for a user without one)."""
        if not user_ids:
            return {}
        rows = await self.db.fetch_all(
            sa.select(users.c.id, users.c.email).where(users.c.id.in_(sorted(set(user_ids))))
        )
        return {row.id: row.email for row in rows}

    # -- read state -----------------------------------------------------------------------

    async def mark_read(self, scope: UserScope, notification_id: int) -> int:
        """Mark one notification read; the new unread count. 404 if it is not the user's."""
        count, _ = await self.mark_read_state(scope, notification_id)
        return count

    async def mark_read_state(self, scope: UserScope, notification_id: int) -> tuple[int, bool]:
        """`mark_read`, also saying whether this call changed anything: (count, changed).

        Only a change is broadcast; the cable answers a repeat on the asking tab alone, so a
        client never waits for an answer that would not come.

        Exact under concurrency: only the transaction whose UPDATE changed the row (the row
        lock makes a racing mark_read or read_all re-check `read_at`) takes 1 off the counter.
        """
        async with self.db.transaction():
            changed = await self.db.fetch_one(
                notifications.update()
                .where(
                    *_owned(scope),
                    notifications.c.id == notification_id,
                    notifications.c.read_at.is_(None),
                )
                .values(read_at=utcnow())
                .returning(notifications.c.id)
            )
            if changed is None:
                exists = await self.db.fetch_one(
                    sa.select(notifications.c.id).where(
                        *_owned(scope), notifications.c.id == notification_id
                    )
                )
                if exists is None:
                    raise HubError(404, "notification.not_found")
                return await self.unread_count(scope), False
            count = await self._uncount(scope, 1)
        await self._publish_state(scope, read_state(notification_id, count))
        return count, True

    async def mark_all_read(self, scope: UserScope) -> int:
        """Mark every unread notification read; the new unread count.

        The counter drops by exactly the rows this UPDATE marked, never to a fixed 0: under
        READ COMMITTED a send can commit its row and its +1 between our two statements, and
        that row is still unread. Subtracting re-reads the counter under its row lock (it
        waits for the send's commit), so the count stays equal to the unread rows. The answer
        is that count: 0 unless a notification arrived meanwhile.
        """
        async with self.db.transaction():
            marked = await self.db.fetch_all(
                notifications.update()
                .where(*_owned(scope), notifications.c.read_at.is_(None))
                .values(read_at=utcnow())
                .returning(notifications.c.id)
            )
            count = await self._uncount(scope, len(marked))
        await self._publish_state(scope, {"action": "all_read", "unread_count": count})
        return count

    async def _uncount(self, scope: UserScope, marked: int) -> int:
        """Take `marked` off the user's unread counter; the new count. The floor at 0 only
        guards the badge: every path keeps the counter equal to the unread rows."""
        if marked == 0:
            return await self.unread_count(scope)
        c = unread_counts.c
        count = await self.db.fetch_val(
            unread_counts.update()
            .where(*_counted(scope))
            .values(count=sa.case((c.count > marked, c.count - marked), else_=0))
            .returning(c.count)
        )
        return int(count or 0)

    async def _publish_state(self, scope: UserScope, message: dict[str, Any]) -> None:
        # Every tab of the user hears it, so each badge stays right.
        await self.broker.publish(
            scope.stream, stream_message(jsonsafe.dumps(message, separators=(",", ":")))
        )
