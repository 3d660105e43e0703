"""Relative, localized times for notifications ("2 minutes ago", "před 2 minutami")."""

from __future__ import annotations

from datetime import datetime, timedelta

from babel.dates import format_timedelta

from infra.i18n import translate

_JUST_NOW_SECONDS = 10


def relative_time(moment: datetime, now: datetime, locale: str) -> str:
    delta = moment - now
    if abs(delta) < timedelta(seconds=_JUST_NOW_SECONDS):
        return translate("time.just_now", locale)
    return format_timedelta(delta, add_direction=True, locale=locale)
