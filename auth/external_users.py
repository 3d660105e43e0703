"""Users a product's backend manages itself, known to the hub by the product's own id.

A product that keeps its own login upserts its users by `external_id`; they all join the
environment's default organization. Apart from `accounts.py` because only the server API's
upsert uses it.
"""

from __future__ import annotations

import sqlalchemy as sa
from databases import Database

from auth.accounts import (
    User,
    create_organization,
    create_user,
    get_user,
    get_user_by_email,
    update_user,
)
from auth.tables import external_identities, memberships, organizations
from infra.db import utcnow


async def default_organization(
    db: Database, *, product_id: int, env: str, name: str, plan_id: int
) -> int:
    """The environment's organization for server-managed users, created on first use."""
    query = sa.select(organizations.c.id).where(
        organizations.c.product_id == product_id,
        organizations.c.env == env,
        organizations.c.is_default.is_(True),
    )
    row = await db.fetch_one(query)
    if row is not None:
        return row._mapping["id"]
    async with db.transaction():
        return await create_organization(
            db,
            product_id=product_id,
            env=env,
            name=name,
            owner_id=None,
            plan_id=plan_id,
            is_default=True,
        )


async def external_user_id(db: Database, product_id: int, env: str, external_id: str) -> int | None:
    """The user the product environment knows as `external_id`, if any."""
    row = await db.fetch_one(
        sa.select(external_identities.c.user_id).where(
            external_identities.c.product_id == product_id,
            external_identities.c.env == env,
            external_identities.c.external_id == external_id,
        )
    )
    return row._mapping["user_id"] if row else None


async def upsert_external_user(
    db: Database,
    *,
    pool_id: int,
    product_id: int,
    env: str,
    external_id: str,
    email: str | None,
    name: str | None,
    locale: str | None,
    org_id: int,
) -> tuple[User, bool]:
    """Create or update the user a product knows as `external_id`; (user, created?).

    An email that already has an identity in the pool's environment links to it (the
    caller decides beforehand whether that identity may be handed over).
    """
    user_id = await external_user_id(db, product_id, env, external_id)
    changes = {k: v for k, v in (("name", name), ("locale", locale)) if v is not None}
    if user_id is not None:
        if changes:
            await update_user(db, user_id, **changes)
        user = await get_user(db, user_id)
        assert user is not None
        return user, False
    existing = await get_user_by_email(db, pool_id, env, email) if email else None
    now = utcnow()
    async with db.transaction():
        if existing is None:
            user_id = await create_user(
                db,
                pool_id=pool_id,
                env=env,
                email=email,
                password_hash=None,
                name=name or "",
                locale=locale,
            )
        else:
            # The product's own values win, as they do for a user it linked before (and an
            # identity taken from an unproven registrant keeps nothing that typist chose).
            user_id = existing.id
            if changes:
                await update_user(db, user_id, **changes)
        await db.execute(
            external_identities.insert().values(
                product_id=product_id,
                env=env,
                external_id=external_id,
                user_id=user_id,
                created_at=now,
            )
        )
        already_member = await db.fetch_one(
            sa.select(memberships.c.id).where(
                memberships.c.organization_id == org_id, memberships.c.user_id == user_id
            )
        )
        if already_member is None:
            await db.execute(
                memberships.insert().values(
                    organization_id=org_id, user_id=user_id, role="member", created_at=now
                )
            )
    user = await get_user(db, user_id)
    assert user is not None
    return user, True
