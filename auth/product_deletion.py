"""Deleting a product's rows in the auth floor: its keys, plans, organizations (with their
memberships, subscriptions and credentials), external ids, sessions and one-time tokens; and
its identity pool with every user in it when no other product uses that pool. A pool shared
with another product keeps its users: they are that product's users too.

SQLite does not enforce the foreign keys' cascades, so every row is deleted explicitly, in
dependency order, with the caller's database handle (inside the caller's transaction: the
console deletes other floors' rows of the product in the same one). The sets of rows are
subqueries, never id lists read into the process, so a large product is one statement per
table.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from databases import Database

from auth.products import Product
from auth.tables import (
    auth_sessions,
    extensions,
    external_identities,
    identity_pools,
    memberships,
    oauth_applications,
    one_time_tokens,
    organizations,
    plans,
    product_keys,
    products,
    subscriptions,
    users,
    workspace_tokens,
)
from infra.db import utcnow


@dataclass(frozen=True)
class Doomed:
    """What deleting a product takes: the live sessions to announce (their sockets close),
    and the users that go with an identity pool nobody else uses (None: the pool stays)."""

    live_session_ids: list[str]
    users: sa.Select | None


async def doomed(db: Database, product: Product) -> Doomed:
    """Read (inside the deleting transaction) what deleting `product` will take."""
    others = await db.fetch_val(
        sa.select(sa.func.count())
        .select_from(products)
        .where(products.c.identity_pool_id == product.identity_pool_id, products.c.id != product.id)
    )
    pool_users = None
    if not others:
        pool_users = sa.select(users.c.id).where(users.c.pool_id == product.identity_pool_id)
    live = sa.and_(auth_sessions.c.revoked_at.is_(None), auth_sessions.c.expires_at > utcnow())
    taken = auth_sessions.c.product_id == product.id
    if pool_users is not None:
        taken = sa.or_(taken, auth_sessions.c.user_id.in_(pool_users))
    rows = await db.fetch_all(sa.select(auth_sessions.c.id).where(taken, live))
    return Doomed([r[0] for r in rows], pool_users)


def _either(
    by_product: sa.ColumnElement[bool], by_user: sa.ColumnElement[bool] | None
) -> sa.ColumnElement[bool]:
    return by_product if by_user is None else sa.or_(by_product, by_user)


async def delete_product_rows(db: Database, product: Product, gone: Doomed) -> None:
    """Delete every auth row of the product (and its pool's users when `gone.users`), the
    rows that point at others first. Run it inside a transaction, after the other floors'
    rows of the product's users are gone."""
    orgs = sa.select(organizations.c.id).where(organizations.c.product_id == product.id)
    doomed_users = gone.users

    def of_users(column: sa.Column) -> sa.ColumnElement[bool] | None:
        return None if doomed_users is None else column.in_(doomed_users)

    statements = [
        auth_sessions.delete().where(
            _either(
                sa.or_(
                    auth_sessions.c.product_id == product.id,
                    auth_sessions.c.organization_id.in_(orgs),
                ),
                of_users(auth_sessions.c.user_id),
            )
        ),
        one_time_tokens.delete().where(
            _either(one_time_tokens.c.product_id == product.id, of_users(one_time_tokens.c.user_id))
        ),
        external_identities.delete().where(
            _either(
                external_identities.c.product_id == product.id,
                of_users(external_identities.c.user_id),
            )
        ),
        workspace_tokens.delete().where(
            _either(
                workspace_tokens.c.organization_id.in_(orgs), of_users(workspace_tokens.c.owner_id)
            )
        ),
        oauth_applications.delete().where(
            _either(
                oauth_applications.c.organization_id.in_(orgs),
                of_users(oauth_applications.c.owner_id),
            )
        ),
        extensions.delete().where(
            _either(extensions.c.organization_id.in_(orgs), of_users(extensions.c.installed_by))
        ),
        subscriptions.delete().where(subscriptions.c.organization_id.in_(orgs)),
        memberships.delete().where(
            _either(memberships.c.organization_id.in_(orgs), of_users(memberships.c.user_id))
        ),
        organizations.delete().where(organizations.c.product_id == product.id),
        plans.delete().where(plans.c.product_id == product.id),
        product_keys.delete().where(product_keys.c.product_id == product.id),
    ]
    for statement in statements:
        await db.execute(statement)
    if doomed_users is not None:
        await db.execute(users.delete().where(users.c.pool_id == product.identity_pool_id))
    await db.execute(products.delete().where(products.c.id == product.id))
    if doomed_users is not None:
        await db.execute(
            identity_pools.delete().where(identity_pools.c.id == product.identity_pool_id)
        )
