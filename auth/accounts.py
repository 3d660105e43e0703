"""Users, organizations, memberships and subscriptions.

A user is one identity per email across the whole deployment; everything else (orgs, their
memberships and plans) belongs to one product environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from databases import Database

from auth.tables import memberships, organizations, plans, subscriptions, users
from hub.db import json_column, utcnow

ROLES = ("owner", "admin", "member")
SUBSCRIPTION_STATUSES = ("active", "trialing", "past_due", "canceled")
USABLE_STATUSES = ("active", "trialing")


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    locale: str | None
    password_hash: str | None
    created_at: datetime

    def public(self) -> dict[str, object]:
        return {"id": self.id, "email": self.email, "name": self.name, "locale": self.locale}


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
    return User(m["id"], m["email"], m["name"], m["locale"], m["password_hash"], m["created_at"])


async def get_user_by_email(db: Database, email: str) -> User | None:
    row = await db.fetch_one(users.select().where(users.c.email == normalize_email(email)))
    return _user(row) if row else None


async def get_user(db: Database, user_id: int) -> User | None:
    row = await db.fetch_one(users.select().where(users.c.id == user_id))
    return _user(row) if row else None


async def create_user(
    db: Database, *, email: str, password_hash: str | None, name: str, locale: str | None
) -> int:
    now = utcnow()
    return await db.execute(
        users.insert().values(
            email=normalize_email(email),
            password_hash=password_hash,
            name=name,
            locale=locale,
            created_at=now,
            updated_at=now,
        )
    )


async def update_user(db: Database, user_id: int, **fields: object) -> None:
    allowed = {"name", "locale", "password_hash"}
    unknown = set(fields) - allowed
    if unknown:
        raise ValueError(f"cannot update {', '.join(sorted(unknown))}")
    await db.execute(
        users.update().where(users.c.id == user_id).values(**fields, updated_at=utcnow())
    )


async def create_organization(
    db: Database, *, product_id: int, env: str, name: str, owner_id: int, plan_id: int
) -> int:
    """A new organization with `owner_id` as its owner and an active subscription."""
    now = utcnow()
    org_id = await db.execute(
        organizations.insert().values(product_id=product_id, env=env, name=name, created_at=now)
    )
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
