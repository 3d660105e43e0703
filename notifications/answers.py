"""The answer shapes of the notifications API, named once (see `auth.answers`)."""

from __future__ import annotations

from auth.answers import BOOLEAN, INTEGER, NULLABLE_STRING, STRING, obj
from infra.api import Schema

NOTIFICATION = Schema(
    "Notification",
    obj(
        ["id", "title"],
        id=INTEGER,
        title=STRING,
        message=STRING,
        url=NULLABLE_STRING,
        type=NULLABLE_STRING,
        created_at=STRING,
        created_at_iso=STRING,
        read=BOOLEAN,
        data={},
    ),
)
NOTIFICATION_PAGE = Schema(
    "NotificationPage",
    obj(
        ["notifications", "unread_count"],
        notifications={"type": "array", "items": NOTIFICATION},
        next_cursor=NULLABLE_STRING,
        unread_count=INTEGER,
    ),
)
UNREAD_COUNT = obj(["unread_count"], unread_count=INTEGER)

SCHEMAS = (NOTIFICATION, NOTIFICATION_PAGE)
SENT = obj(
    ["notifications", "count"],
    notifications={"type": "array", "items": obj()},
    count=INTEGER,
)
MARKED_READ = obj(["id", "read", "unread_count"])
