"""NotificationsChannel: a user's notifications, live, in every tab.

Its frames keep the Kiket seed's browser snippet working verbatim: `message` is a JSON
*string* of `{"action": "new_notification", "unread_count": N, "notification": {...}}`.
Actions: `mark_read` {id}, `mark_all_read`, and `sync` {since: last id seen}, which answers
with what the client missed (bounded, `has_more`) and the unread count.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from channels.base import Channel, ChannelConnection, ChannelHost
from infra.ids import parse_id
from notifications.model import new_notification_message
from notifications.scope import UserScope
from notifications.service import NotificationService, read_state

SYNC_LIMIT = 100
RECOVER_LIMIT = 500


class NotificationsChannel(Channel):
    name = "NotificationsChannel"
    actions = frozenset({"mark_read", "mark_all_read", "sync"})
    # The seed's client does JSON.parse(data.message): every message is a JSON string.
    message_as_json_string = True
    __slots__ = ("service",)

    def __init__(
        self,
        host: ChannelHost,
        connection: ChannelConnection,
        identifier: str,
        params: dict,
        *,
        service: NotificationService,
    ) -> None:
        super().__init__(host, connection, identifier, params)
        self.service = service

    def _scope(self) -> UserScope:
        c = self.connection
        return UserScope(c.product_id, c.env, c.user_id)

    async def subscribed(self) -> None:
        # A bound method, not a closure: no function, cells and scope kept per socket.
        await self.stream_from(self._scope().stream, self.recover)

    async def recover(self, since: datetime) -> list[tuple[int, str]]:
        """What the user's stream may have missed since `since` (after a broker gap)."""
        scope, locale = self._scope(), self.connection.locale
        missed = await self.service.created_since(scope, since, RECOVER_LIMIT)
        if not missed:
            return []
        count = await self.service.unread_count(scope)
        return [(n.id, new_notification_message(n, count, locale)) for n in missed]

    async def mark_read(self, data: dict[str, Any]) -> None:
        notification_id = parse_id(data.get("id"), allow_zero=True)
        count, changed = await self.service.mark_read_state(self._scope(), notification_id)
        # A change is broadcast by the service to every tab of the user, this one included.
        # A notification already read changes nothing the other tabs do not know: this tab
        # alone hears the same state, so it never waits for an answer.
        if not changed:
            self.transmit(read_state(notification_id, count))

    async def mark_all_read(self, data: dict[str, Any]) -> None:
        await self.service.mark_all_read(self._scope())

    async def sync(self, data: dict[str, Any]) -> None:
        # Only an absent or null `since` means "from the start"; anything else must be an id
        # (a number or a string of digits), not a falsy `[]`, `{}`, `false` or `""`.
        raw = data.get("since")
        since = 0 if raw is None else parse_id(raw, allow_zero=True)
        scope = self._scope()
        items, has_more = await self.service.since(scope, since, SYNC_LIMIT)
        self.transmit(
            {
                "action": "sync",
                "notifications": [n.public(self.connection.locale) for n in items],
                "has_more": has_more,
                "unread_count": await self.service.unread_count(scope),
            }
        )
