"""A product environment's users as its operators see them: found by email or external id,
with their organizations and live sessions, and those sessions revoked.

Everything is scoped to one product environment. A user is one of it when they are a member
of one of its organizations (the publish path's rule, `auth/recipients.py`): an identity of
a shared pool that only another product's organizations hold is never found, shown or
touched here, and revoking a user's sessions ends only this product environment's.
Revoking announces the session ids (`revoked`), so every hub process closes their sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from auth.accounts import normalize_email
from auth.products import Product
from auth.recipients import is_member
from auth.session_tokens import SessionsRevoked
from auth.tables import auth_sessions, external_identities, memberships, organizations, users
from infra.db import as_utc, utcnow

EMAIL_MAX = 320
REVOKED_REASON = "console"


@dataclass(frozen=True)
class UserSummary:
    id: int
    email: str | None
    name: str
    verified: bool
    created_at: datetime


@dataclass(frozen=True)
class UserOrganization:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class LiveSession:
    """A live session, never its tokens: when it began, was last refreshed, ends."""

    id: str
    organization_id: int
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime


@dataclass(frozen=True)
class UserDetail:
    user: UserSummary
    external_ids: list[str]
    organizations: list[UserOrganization]
    sessions: list[LiveSession]


def _summary(row: object) -> UserSummary:
    m = row._mapping  # type: ignore[attr-defined]
    return UserSummary(
        id=m["id"],
        email=m["email"],
        name=m["name"],
        verified=m["email_verified_at"] is not None,
        created_at=as_utc(m["created_at"]),
    )


_SUMMARY_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.name,
    users.c.email_verified_at,
    users.c.created_at,
)


class UserAdmin:
    def __init__(self, db: Database, revoked: SessionsRevoked) -> None:
        self._db = db
        # Tells every hub process these sessions are gone (their sockets close at once).
        self._revoked = revoked

    def _of_env(self, product: Product, env: str) -> list[sa.ColumnElement[bool]]:
        return [
            users.c.pool_id == product.identity_pool_id,
            users.c.env == env,
            is_member(users.c.id, product.id, env),
        ]

    async def search(
        self, product: Product, env: str, query: str, *, after: int | None, limit: int
    ) -> list[UserSummary]:
        """Users of the product environment, by id, after the id `after`: all of them for an
        empty `query`, else those whose email is it or starts with it (case-insensitive) or
        whose external id (of this product environment) is it or starts with it."""
        conditions = self._of_env(product, env)
        query = query.strip()
        if query:
            external = sa.select(external_identities.c.user_id).where(
                external_identities.c.product_id == product.id,
                external_identities.c.env == env,
                external_identities.c.external_id.startswith(query, autoescape=True),
            )
            conditions.append(
                sa.or_(
                    users.c.email.startswith(normalize_email(query), autoescape=True),
                    users.c.id.in_(external),
                )
            )
        if after is not None:
            conditions.append(users.c.id > after)
        rows = await self._db.fetch_all(
            sa.select(*_SUMMARY_COLUMNS).where(*conditions).order_by(users.c.id).limit(limit)
        )
        return [_summary(r) for r in rows]

    async def user(self, product: Product, env: str, user_id: int) -> UserDetail | None:
        """The user with their external ids, organizations and live sessions in this product
        environment; None unless they are one of its users."""
        row = await self._db.fetch_one(
            sa.select(*_SUMMARY_COLUMNS).where(users.c.id == user_id, *self._of_env(product, env))
        )
        if row is None:
            return None
        external = await self._db.fetch_all(
            sa.select(external_identities.c.external_id)
            .where(
                external_identities.c.user_id == user_id,
                external_identities.c.product_id == product.id,
                external_identities.c.env == env,
            )
            .order_by(external_identities.c.external_id)
        )
        orgs = await self._db.fetch_all(
            sa.select(organizations.c.id, organizations.c.name, memberships.c.role)
            .select_from(memberships.join(organizations))
            .where(
                memberships.c.user_id == user_id,
                organizations.c.product_id == product.id,
                organizations.c.env == env,
            )
            .order_by(organizations.c.id)
        )
        return UserDetail(
            user=_summary(row),
            external_ids=[r[0] for r in external],
            organizations=[UserOrganization(r[0], r[1], r[2]) for r in orgs],
            sessions=await self.live_sessions(product, env, user_id),
        )

    def _live(self, product: Product, env: str, user_id: int) -> list[sa.ColumnElement[bool]]:
        return [
            auth_sessions.c.user_id == user_id,
            auth_sessions.c.product_id == product.id,
            auth_sessions.c.env == env,
            auth_sessions.c.revoked_at.is_(None),
            auth_sessions.c.expires_at > utcnow(),
        ]

    async def live_sessions(self, product: Product, env: str, user_id: int) -> list[LiveSession]:
        rows = await self._db.fetch_all(
            sa.select(
                auth_sessions.c.id,
                auth_sessions.c.organization_id,
                auth_sessions.c.created_at,
                auth_sessions.c.rotated_at,
                auth_sessions.c.expires_at,
            )
            .where(*self._live(product, env, user_id))
            .order_by(auth_sessions.c.created_at.desc(), auth_sessions.c.id)
        )
        return [
            LiveSession(r[0], r[1], as_utc(r[2]), as_utc(r[3]), as_utc(r[4]))  # type: ignore[arg-type]
            for r in rows
        ]

    async def revoke_sessions(
        self, product: Product, env: str, user_id: int, session_id: str | None = None
    ) -> list[str]:
        """Revoke one live session of the user (`session_id`) or all of them, in this product
        environment only; the ids revoked (announced to every process)."""
        conditions = self._live(product, env, user_id)
        if session_id is not None:
            conditions.append(auth_sessions.c.id == session_id)
        rows = await self._db.fetch_all(
            auth_sessions.update()
            .where(*conditions)
            .values(revoked_at=utcnow(), revoked_reason=REVOKED_REASON)
            .returning(auth_sessions.c.id)
        )
        revoked = [r._mapping["id"] for r in rows]
        await self._revoked(revoked)
        return revoked
