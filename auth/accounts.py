"""Users, organizations, memberships and subscriptions.

A user is one identity per email within an identity pool and an environment: every email
lookup is scoped by (pool, env), so no product reaches an identity of another pool or of the
other environment. Everything else (orgs, their memberships and plans) belongs to one product
environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from auth.tables import (
    auth_sessions,
    memberships,
    organizations,
    plans,
    subscriptions,
    users,
)
from infra.db import bound, json_column, utcnow

SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "canceled")
USABLE_STATUSES = ("active", "trialing")


@dataclass(frozen=True)
class User:
    id: int
    email: str | None
    name: str
    locale: str | None
    password_hash: str | None
    created_at: datetime
    pool_id: int
    env: str
    email_verified_at: datetime | None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def belongs_to(self, pool_id: int, env: str) -> bool:
        return self.pool_id == pool_id and self.env == env

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "locale": self.locale,
            "email_verified": self.email_verified,
        }


@dataclass(frozen=True)
class OrgMembership:
    id: int
    name: str
    role: str

    def public(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "role": self.role}


@dataclass(frozen=True)
class Subscription:
    status: str
    plan: str
    features: tuple[str, ...]

    @property
    def usable(self) -> bool:
        return self.status in USABLE_STATUSES

    def public(self) -> dict[str, object]:
        return {"status": self.status, "plan": self.plan, "features": list(self.features)}


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _user(row: object) -> User:
    m = row._mapping  # type: ignore[attr-defined]
    return User(
        m["id"],
        m["email"],
        m["name"],
        m["locale"],
        m["password_hash"],
        m["created_at"],
        m["pool_id"],
        m["env"],
        m["email_verified_at"],
    )


async def get_user_by_email(db: Database, pool_id: int, env: str, email: str) -> User | None:
    """The identity with this email in the pool's environment (and nowhere else)."""
    row = await db.fetch_one(
        users.select().where(
            users.c.pool_id == pool_id,
            users.c.env == env,
            users.c.email == normalize_email(email),
        )
    )
    return _user(row) if row else None


# Built once: every authenticated request and every cable connect reads a user by id.
_USER_BY_ID = users.select().where(users.c.id == sa.bindparam("user_id", type_=sa.Integer))


async def get_user(db: Database, user_id: int) -> User | None:
    row = await db.fetch_one(bound(_USER_BY_ID, user_id=user_id))
    return _user(row) if row else None


async def get_pool_user(db: Database, pool_id: int, env: str, user_id: int) -> User | None:
    """The user with this id if it is an identity of the pool and `env` (a token or a
    link names a user id; it must not reach an identity of another pool or environment)."""
    user = await get_user(db, user_id)
    if user is None or not user.belongs_to(pool_id, env):
        return None
    return user


# Built once: an access token's user, read with its session in one round trip (every
# authenticated request and every cable connect asks both).
_USER_OF_LIVE_SESSION = users.select().where(
    users.c.id == sa.bindparam("user_id", type_=sa.Integer),
    sa.exists().where(
        auth_sessions.c.id == sa.bindparam("sid", type_=auth_sessions.c.id.type),
        auth_sessions.c.revoked_at.is_(None),
        auth_sessions.c.expires_at > sa.bindparam("now", type_=auth_sessions.c.expires_at.type),
    ),
)


async def get_session_user(
    db: Database, pool_id: int, env: str, user_id: int, sid: str
) -> User | None:
    """The user of an access token: an identity of the pool and `env`, while the token's
    session `sid` is live (neither revoked nor expired); None otherwise."""
    row = await db.fetch_one(bound(_USER_OF_LIVE_SESSION, user_id=user_id, sid=sid, now=utcnow()))
    if row is None:
        return None
    user = _user(row)
    return user if user.belongs_to(pool_id, env) else None


async def create_user(
    db: Database,
    *,
    pool_id: int,
    env: str,
    email: str | None,
    password_hash: str | None,
    name: str,
    locale: str | None,
) -> int:
    now = utcnow()
    return await db.execute(
        users.insert().values(
            pool_id=pool_id,
            env=env,
            email=normalize_email(email) if email else None,
            password_hash=password_hash,
            name=name,
            locale=locale,
            created_at=now,
            updated_at=now,
        )
    )


async def update_user(db: Database, user_id: int, **fields: object) -> None:
    allowed = {"name", "locale", "password_hash", "email_verified_at", "email"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    await db.execute(
        users.update().where(users.c.id == user_id).values(**fields, updated_at=utcnow())
    )


async def password_hash_is(db: Database, user_id: int, expected: str | None) -> bool:
    """Whether the user's password hash is still `expected`. Inside a transaction the row
    stays locked to its end (PostgreSQL; SQLite serializes writing transactions anyway), so
    a concurrent password change waits for the caller's writes."""
    row = await db.fetch_one(
        sa.select(users.c.password_hash).where(users.c.id == user_id).with_for_update()
    )
    return row is not None and row._mapping["password_hash"] == expected


async def create_organization(
    db: Database,
    *,
    product_id: int,
    env: str,
    name: str,
    owner_id: int | None,
    plan_id: int,
    is_default: bool = False,
) -> int:
    """A new organization with an active subscription, and `owner_id` as its owner if given."""
    now = utcnow()
    org_id = await db.execute(
        organizations.insert().values(
            product_id=product_id, env=env, name=name, is_default=is_default, created_at=now
        )
    )
    if owner_id is not None:
        await db.execute(
            memberships.insert().values(
                organization_id=org_id, user_id=owner_id, role="owner", created_at=now
            )
        )
    await db.execute(
        subscriptions.insert().values(
            organization_id=org_id,
            plan_id=plan_id,
            status="active",
            created_at=now,
            updated_at=now,
        )
    )
    return org_id


async def user_organizations(
    db: Database, user_id: int, product_id: int, env: str
) -> list[OrgMembership]:
    """The user's organizations in this product environment, oldest first."""
    rows = await db.fetch_all(
        sa.select(organizations.c.id, organizations.c.name, memberships.c.role)
        .select_from(memberships.join(organizations))
        .where(
            memberships.c.user_id == user_id,
            organizations.c.product_id == product_id,
            organizations.c.env == env,
        )
        .order_by(organizations.c.id)
    )
    return [OrgMembership(r._mapping["id"], r._mapping["name"], r._mapping["role"]) for r in rows]


async def user_organization(
    db: Database, user_id: int, org_id: int, product_id: int, env: str
) -> OrgMembership | None:
    for org in await user_organizations(db, user_id, product_id, env):
        if org.id == org_id:
            return org
    return None


async def get_subscription(db: Database, org_id: int) -> Subscription | None:
    row = await db.fetch_one(
        sa.select(subscriptions.c.status, plans.c.code, plans.c.features)
        .select_from(subscriptions.join(plans))
        .where(subscriptions.c.organization_id == org_id)
    )
    if row is None:
        return None
    m = row._mapping
    return Subscription(m["status"], m["code"], tuple(json_column(m["features"]) or ()))


async def set_subscription_status(db: Database, org_id: int, status: str) -> bool:
    if status not in SUBSCRIPTION_STATUSES:
        raise ValueError(f"status must be one of {', '.join(SUBSCRIPTION_STATUSES)}")
    row = await db.fetch_one(
        subscriptions.update()
        .where(subscriptions.c.organization_id == org_id)
        .values(status=status, updated_at=utcnow())
        .returning(subscriptions.c.id)
    )
    return row is not None
