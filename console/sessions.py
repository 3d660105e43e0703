"""Console sessions: the server-side rows behind the `hub_console_session` cookie.

The cookie carries a random id; the table keeps only its SHA-256, so a copy of the database
signs nobody in. A session ends when revoked (sign-out, a new sign-in presenting it, or
every session of an account at once), after `idle_seconds` without a request, or
`absolute_seconds` after sign-in, whichever comes first.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from databases import Database

from auth.credential_secrets import hash_secret
from console.accounts import Account, get_account
from console.tables import console_sessions
from infra.db import as_utc, utcnow

USER_AGENT_MAX = 500
# At most one write per session in this many seconds (or a quarter of the idle time).
TOUCH_INTERVAL = 60.0


@dataclass(frozen=True)
class ConsoleSession:
    id: int
    account: Account
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


class ConsoleSessions:
    def __init__(self, db: Database, *, idle_seconds: int, absolute_seconds: int) -> None:
        self._db = db
        self._idle = timedelta(seconds=idle_seconds)
        self._absolute = timedelta(seconds=absolute_seconds)
        self._touch_every = timedelta(seconds=min(TOUCH_INTERVAL, idle_seconds / 4))

    async def start(self, account: Account, *, ip: str, user_agent: str) -> str:
        """A new session of `account`; the cookie value (exists nowhere else)."""
        session_id = secrets.token_urlsafe(32)
        now = utcnow()
        await self._db.execute(
            console_sessions.insert().values(
                id_hash=hash_secret(session_id),
                account_id=account.id,
                csrf_token=secrets.token_urlsafe(32),
                created_at=now,
                last_seen_at=now,
                expires_at=now + self._absolute,
                ip=ip[:64],
                user_agent=user_agent[:USER_AGENT_MAX],
            )
        )
        return session_id

    async def look_up(self, session_id: str) -> ConsoleSession | None:
        """The live session the cookie names, touched; None if unknown or ended."""
        row = await self._db.fetch_one(
            console_sessions.select().where(
                (console_sessions.c.id_hash == hash_secret(session_id))
                & console_sessions.c.revoked_at.is_(None)
            )
        )
        if row is None:
            return None
        m = row._mapping
        now = utcnow()
        # The absolute limit is also read from the setting as it is now: lowering
        # HUB_CONSOLE_SESSION_HOURS shortens the sessions already running.
        ends = min(_aware(m["expires_at"]), _aware(m["created_at"]) + self._absolute)
        if now >= ends or now >= _aware(m["last_seen_at"]) + self._idle:
            return None
        account = await get_account(self._db, m["account_id"])
        if account is None or not account.active:
            return None
        last_seen = _aware(m["last_seen_at"])
        if now - last_seen >= self._touch_every:
            await self._db.execute(
                console_sessions.update()
                .where(console_sessions.c.id == m["id"])
                .values(last_seen_at=now)
            )
            last_seen = now
        return ConsoleSession(
            id=m["id"],
            account=account,
            csrf_token=m["csrf_token"],
            created_at=_aware(m["created_at"]),
            last_seen_at=last_seen,
            expires_at=_aware(m["expires_at"]),
        )

    async def revoke(self, session_id: str) -> None:
        """End the session the cookie value names (nothing if it names none)."""
        await self._db.execute(
            console_sessions.update()
            .where(
                (console_sessions.c.id_hash == hash_secret(session_id))
                & console_sessions.c.revoked_at.is_(None)
            )
            .values(revoked_at=utcnow())
        )

    async def revoke_account(self, account_id: int) -> int:
        """End every session of the account; how many were live."""
        ended = await self._db.fetch_all(
            console_sessions.update()
            .where(
                (console_sessions.c.account_id == account_id)
                & console_sessions.c.revoked_at.is_(None)
            )
            .values(revoked_at=utcnow())
            .returning(console_sessions.c.id)
        )
        return len(ended)


def _aware(value: datetime) -> datetime:
    aware = as_utc(value)
    assert aware is not None
    return aware
