"""Refresh sessions: one per login, rotated on every refresh, revoked as a whole.

Each refresh hands out a new refresh token (new `jti`) and retires the presented one. A retired
token presented again means two parties hold the session, one of them not the user: the whole
session (its "family") is revoked. The single exception is the token retired moments ago,
which two tabs refreshing at once legitimately both present: it is accepted exactly once more
within the grace period (`grace_used`, claimed by compare-and-swap), and answered with the
session's current token. Any further use of it, even inside the grace period, is reuse.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from databases import Database

from auth.credential_secrets import new_id
from auth.tables import auth_sessions
from infra.db import as_utc, bound, bound_list, list_value, utcnow


@dataclass(frozen=True)
class Session:
    id: str
    user_id: int
    organization_id: int
    product_id: int
    env: str
    refresh_jti: str
    previous_jti: str | None
    rotated_at: datetime | None
    expires_at: datetime
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class RefreshRejected(Exception):
    """The refresh token cannot be used; `reason` is for logs and tests, not for clients."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _session(row: object) -> Session:
    m = row._mapping  # type: ignore[attr-defined]
    return Session(
        id=m["id"],
        user_id=m["user_id"],
        organization_id=m["organization_id"],
        product_id=m["product_id"],
        env=m["env"],
        refresh_jti=m["refresh_jti"],
        previous_jti=m["previous_jti"],
        rotated_at=as_utc(m["rotated_at"]),
        expires_at=as_utc(m["expires_at"]),
        revoked_at=as_utc(m["revoked_at"]),
    )


async def create_session(
    db: Database, *, user_id: int, org_id: int, product_id: int, env: str, ttl: int
) -> Session:
    now = utcnow()
    sid, jti = new_id(), new_id()
    await db.execute(
        auth_sessions.insert().values(
            id=sid,
            user_id=user_id,
            organization_id=org_id,
            product_id=product_id,
            env=env,
            refresh_jti=jti,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    session = await get_session(db, sid)
    assert session is not None
    return session


# Built once: a session read by id (every refresh reads one).
_SESSION_BY_ID = auth_sessions.select().where(
    auth_sessions.c.id == sa.bindparam("sid", type_=auth_sessions.c.id.type)
)


async def get_session(db: Database, sid: str) -> Session | None:
    row = await db.fetch_one(bound(_SESSION_BY_ID, sid=sid))
    return _session(row) if row else None


async def rotate_session(
    db: Database, sid: str, presented_jti: str, *, ttl: int, grace: int
) -> Session:
    """Retire `presented_jti` and return the session with its next refresh `jti`.

    Raises `RefreshRejected` for unknown, expired or revoked sessions, and revokes the session
    when a retired token is replayed, except the just-retired one's single use within `grace`.
    """
    now = utcnow()
    session = await get_session(db, sid)
    if session is None or not session.active(now):
        raise RefreshRejected("session inactive")
    if presented_jti == session.refresh_jti:
        # Compare-and-swap on the current jti: of two concurrent refreshes exactly one wins;
        # the loser re-reads and lands in the grace branch below.
        won = await db.fetch_one(
            auth_sessions.update()
            .where(
                auth_sessions.c.id == sid,
                auth_sessions.c.refresh_jti == presented_jti,
                auth_sessions.c.revoked_at.is_(None),
            )
            .values(
                refresh_jti=new_id(),
                previous_jti=presented_jti,
                rotated_at=now,
                grace_used=False,
                expires_at=now + timedelta(seconds=ttl),
            )
            .returning(auth_sessions.c.id)
        )
        session = await get_session(db, sid)
        if won is not None and session is not None:
            return session
        if session is None or not session.active(now):
            raise RefreshRejected("session inactive")
    if (
        presented_jti == session.previous_jti
        and session.rotated_at is not None
        and now - session.rotated_at <= timedelta(seconds=grace)
        and await _claim_grace(db, sid, presented_jti)
    ):
        return session
    await revoke_session(db, sid, "refresh_reuse")
    raise RefreshRejected("refresh token reuse")


async def _claim_grace(db: Database, sid: str, retired_jti: str) -> bool:
    """Take the retired token's one grace use; False when it is gone. Of two concurrent
    claims exactly one wins (compare-and-swap on `grace_used` and the retired jti)."""
    won = await db.fetch_one(
        auth_sessions.update()
        .where(
            auth_sessions.c.id == sid,
            auth_sessions.c.previous_jti == retired_jti,
            auth_sessions.c.grace_used == sa.false(),
            auth_sessions.c.revoked_at.is_(None),
        )
        .values(grace_used=True)
        .returning(auth_sessions.c.id)
    )
    return won is not None


async def revoke_session(db: Database, sid: str, reason: str) -> bool:
    row = await db.fetch_one(
        auth_sessions.update()
        .where(auth_sessions.c.id == sid, auth_sessions.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .returning(auth_sessions.c.id)
    )
    return row is not None


async def revoke_user_sessions(db: Database, user_id: int, reason: str) -> list[str]:
    """Revoke every live session of the user; returns their ids."""
    rows = await db.fetch_all(
        auth_sessions.update()
        .where(auth_sessions.c.user_id == user_id, auth_sessions.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .returning(auth_sessions.c.id)
    )
    return [row._mapping["id"] for row in rows]


@functools.cache
def _inactive_among(dialect: str) -> sa.Select:
    """Those of `session_ids` with no live session, one bound list however many sockets a
    process holds (the cable's periodic sweep). It answers only the inactive ones, almost
    always none: answering the live ones made a row per open socket every sweep, and building
    thousands of rows at once held the event loop (and woke the collector) long enough to
    show in every socket's delivery times."""
    wanted = bound_list(dialect, "session_ids", sa.Text)
    live = sa.exists().where(
        auth_sessions.c.id == wanted.c.value,
        auth_sessions.c.revoked_at.is_(None),
        auth_sessions.c.expires_at > sa.bindparam("now", type_=auth_sessions.c.expires_at.type),
    )
    return sa.select(wanted.c.value).where(~live)


async def inactive_among(db: Database, sids: set[str]) -> set[str]:
    """Those of `sids` that are revoked, expired or unknown."""
    if not sids:
        return set()
    dialect = db.url.dialect
    rows = await db.fetch_all(
        bound(_inactive_among(dialect), session_ids=list_value(dialect, list(sids)), now=utcnow())
    )
    return {row._mapping["value"] for row in rows}
