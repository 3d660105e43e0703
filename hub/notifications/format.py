"""How a notification looks to clients: the Kiket seed's fields plus an ISO time and `data`.

`created_at` is relative and localized ("2 minutes ago", "před 2 minutami") as in the seed;
`created_at_iso` carries the exact time for clients that render their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Protocol

from babel.dates import format_timedelta

JUST_NOW = {"en": "just now", "cs": "právě teď", "de": "gerade eben"}
_JUST_NOW_SECONDS = 10


class NotificationLike(Protocol):
    id: int
    title: str
    message: str
    url: str | None
    type: str | None
    data: Any
    created_at: datetime
    read_at: datetime | None


def relative_time(moment: datetime, now: datetime, locale: str) -> str:
    delta = moment - now
    if abs(delta) < timedelta(seconds=_JUST_NOW_SECONDS):
        return JUST_NOW.get(locale, JUST_NOW["en"])
    return format_timedelta(delta, add_direction=True, locale=locale)


def notification_json(n: NotificationLike, locale: str, now: datetime) -> dict[str, Any]:
    return {
        "id": n.id,
        "title": n.title,
        "message": n.message,
        "url": n.url,
        "type": n.type,
        "created_at": relative_time(n.created_at, now, locale),
        "created_at_iso": n.created_at.isoformat().replace("+00:00", "Z"),
        "read": n.read_at is not None,
        "data": n.data,
    }
