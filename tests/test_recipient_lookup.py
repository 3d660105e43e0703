"""The publish path's recipient lookup reads rows per recipient, never per user of the product.

A product's backend-upserted users share one organization, so "is a member of the product"
written as a semi-join made PostgreSQL's generic plan (the one a prepared statement settles on)
read every membership of the product on each publish: 45 ms per request at 5,000 users. The
plan is checked here under `plan_cache_mode = force_generic_plan`, on real PostgreSQL.
"""

from __future__ import annotations

import json

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

from auth.recipients import _users_by_id
from hub.migrate import migrate
from tests.conftest import scratch_postgres, service_missing

USERS = 2000


@pytest.fixture(scope="module")
def crowded_product() -> str:
    """A scratch database whose product has USERS users in one organization."""
    with scratch_postgres() as url:
        if url is None:
            service_missing("PostgreSQL (DATABASE_URL)")
        migrate(url)
        yield url


async def _seed(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO identity_pools (id, name, created_at) VALUES (1, 'pool', now());
        INSERT INTO products (id, slug, name, origins, created_at, identity_pool_id)
            VALUES (1, 'crowded', 'Crowded', '[]', now(), 1), (2, 'other', 'Other', '[]', now(), 1);
        INSERT INTO organizations (id, product_id, env, name, created_at, is_default)
            VALUES (1, 1, 'live', 'everyone', now(), true),
                   (2, 2, 'live', 'elsewhere', now(), true);
        """
    )
    # Statistics taken while the product was young (as autovacuum leaves them between its
    # runs), then the product grows: the planner believes each organization has few members.
    for first, last in ((1, 20), (21, USERS)):
        await conn.execute(
            f"""
            INSERT INTO users (id, name, created_at, updated_at, pool_id, env)
                SELECT g, 'u', now(), now(), 1, 'live' FROM generate_series({first}, {last}) g;
            INSERT INTO memberships (organization_id, user_id, role, created_at)
                SELECT CASE WHEN g = {USERS} THEN 2 ELSE 1 END, g, 'member', now()
                FROM generate_series({first}, {last}) g;
            """
        )
        if last == 20:
            await conn.execute("ANALYZE")


def _rows_read(plan: dict, relation: str) -> int:
    """Rows all scans of `relation` produced, over all their loops."""
    total = 0
    if plan.get("Relation Name") == relation:
        total += plan["Actual Rows"] * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        total += _rows_read(child, relation)
    return total


async def test_the_generic_plan_reads_memberships_per_recipient(crowded_product):
    conn = await asyncpg.connect(crowded_product)
    try:
        await _seed(conn)
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        compiled = _users_by_id("postgresql").compile(dialect=asyncpg_dialect.dialect())
        wanted = [5, 6, 7, USERS]
        params = {
            **compiled.params,  # the statement's own literals (its LIMIT)
            "user_ids": wanted,
            "product_id": 1,
            "env": "live",
            "organization_id": None,
        }
        args = [params[name] for name in compiled.positiontup]
        statement = await conn.prepare(str(compiled))
        found = sorted(row["id"] for row in await statement.fetch(*args))
        # The user of the other product is not a recipient of this one.
        assert found == [5, 6, 7]
        explained = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}", *args)
        plan = json.loads(explained)[0]["Plan"]
        # Per recipient: its user row and its membership, not the product's thousands.
        for relation in ("users", "memberships"):
            assert _rows_read(plan, relation) <= len(wanted), (relation, plan)
    finally:
        await conn.close()
