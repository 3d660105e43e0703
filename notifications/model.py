"""A stored notification and the two shapes clients see it in (HTTP item, cable message).

Shared by the publish path (which builds notifications from what it inserted) and the read
path (which builds them from rows), so both show a notification the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra import jsonsafe
from infra.db import as_utc, json_column, utcnow
from notifications.format import relative_time

CONTENT_FIELDS = ("title", "message", "url", "type", "data")


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

    @classmethod
    def from_row(cls, row: object) -> Notification:
        m = row._mapping  # type: ignore[attr-defined]
        return cls(
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
