"""Migration 0004 (identity pools) on a database with data, on SQLite and PostgreSQL: each
product becomes its own pool, and a user two products (or two environments) shared is split
into one identity per (pool, environment), every row re-pointed to its copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from auth import accounts
from auth.tables import (
    auth_sessions,
    external_identities,
    identity_pools,
    memberships,
    one_time_tokens,
    products,
    users,
    workspace_tokens,
)
from hub.migrate import migrate
from infra.db import connect_database, is_sqlite
from notifications.tables import notifications, unread_counts
from tests.conftest import scratch_postgres
from tests.support import run_async


@pytest.fixture(params=["sqlite", "postgres"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with scratch_postgres() as url:
        if url is None:
            pytest.skip("PostgreSQL (DATABASE_URL) is not configured")
        yield url


def _rows_before_0004(now: str) -> list[str]:
    """Products a (1) and b (2); user 1 is in a/live, a/test and b/live; user 2 nowhere."""
    return [
        f"INSERT INTO products (id, slug, name, origins, created_at) VALUES "
        f"(1, 'a', 'A', '[]', {now}), (2, 'b', 'B', '[]', {now})",
        f"INSERT INTO users (id, email, password_hash, name, locale, created_at, updated_at) "
        f"VALUES (1, 'shared@example.com', 'argon-hash', 'Shared', 'cs', {now}, {now}), "
        f"(2, 'lonely@example.com', NULL, 'Lonely', NULL, {now}, {now})",
        f"INSERT INTO organizations (id, product_id, env, name, created_at) VALUES "
        f"(1, 1, 'live', 'A live', {now}), (2, 2, 'live', 'B live', {now}), "
        f"(3, 1, 'test', 'A test', {now})",
        f"INSERT INTO memberships (organization_id, user_id, role, created_at) VALUES "
        f"(1, 1, 'owner', {now}), (2, 1, 'member', {now}), (3, 1, 'owner', {now})",
        f"INSERT INTO external_identities (product_id, env, external_id, user_id, created_at) "
        f"VALUES (2, 'live', 'crm-1', 1, {now})",
        f"INSERT INTO auth_sessions (id, user_id, organization_id, product_id, env, refresh_jti,"
        f" created_at, expires_at) VALUES ('s-b', 1, 2, 2, 'live', 'j', {now}, {now}),"
        f" ('s-a', 1, 1, 1, 'live', 'k', {now}, {now})",
        f"INSERT INTO one_time_tokens (purpose, token_hash, user_id, product_id, env, created_at,"
        f" expires_at) VALUES ('password_reset', 'h-a-test', 1, 1, 'test', {now}, {now})",
        f"INSERT INTO notifications (product_id, env, user_id, title, created_at) VALUES "
        f"(2, 'live', 1, 'Payslip', {now}), (1, 'live', 1, 'Welcome', {now})",
        "INSERT INTO unread_counts (product_id, env, user_id, count) VALUES (2, 'live', 1, 1)",
        f"INSERT INTO workspace_tokens (organization_id, owner_id, name, token_hash, token_prefix,"
        f" scopes, created_at) VALUES (2, 1, 'ci', 'wh', 'wksp_x', '[]', {now})",
    ]


async def _fill(url: str) -> None:
    now = "'2026-01-01 00:00:00.000000'" if is_sqlite(url) else "'2026-01-01 00:00:00+00'"
    db = connect_database(url)
    await db.connect()
    try:
        for statement in _rows_before_0004(now):
            await db.execute(statement)
        if not is_sqlite(url):  # explicit ids: move the sequences past them, as real rows do
            for table in ("products", "users", "organizations"):
                await db.execute(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
    finally:
        await db.disconnect()


async def _after(url: str) -> dict[str, object]:
    db = connect_database(url)
    await db.connect()
    try:

        async def column(query: sa.Select) -> list[object]:
            return [row[0] for row in await db.fetch_all(query)]

        pools = {
            r._mapping["name"]: r._mapping["id"]
            for r in await db.fetch_all(identity_pools.select())
        }
        identities = {
            (r._mapping["pool_id"], r._mapping["env"], r._mapping["email"]): dict(r._mapping)
            for r in await db.fetch_all(users.select())
        }
        # New users still get fresh ids after the copies (PostgreSQL: the sequence moved on).
        fresh = await accounts.create_user(
            db,
            pool_id=pools["a"],
            env="live",
            email="new@example.com",
            password_hash=None,
            name="",
            locale=None,
        )
        return {
            "fresh": fresh,
            "pools": pools,
            "product_pools": dict(
                (r[0], r[1])
                for r in await db.fetch_all(sa.select(products.c.slug, products.c.identity_pool_id))
            ),
            "users": identities,
            "members": {
                r[0]: r[1]
                for r in await db.fetch_all(
                    sa.select(memberships.c.organization_id, memberships.c.user_id)
                )
            },
            "external": await column(sa.select(external_identities.c.user_id)),
            "sessions": dict(
                (r[0], r[1])
                for r in await db.fetch_all(sa.select(auth_sessions.c.id, auth_sessions.c.user_id))
            ),
            "one_time": await column(sa.select(one_time_tokens.c.user_id)),
            "notifications": dict(
                (r[0], r[1])
                for r in await db.fetch_all(
                    sa.select(notifications.c.title, notifications.c.user_id)
                )
            ),
            "unread": await column(sa.select(unread_counts.c.user_id)),
            "workspace": await column(sa.select(workspace_tokens.c.owner_id)),
        }
    finally:
        await db.disconnect()


def test_0004_splits_a_shared_user_into_one_identity_per_pool_and_environment(empty_database):
    migrate(empty_database, "0003")
    run_async(_fill(empty_database))
    migrate(empty_database)
    after = run_async(_after(empty_database))

    pools = after["pools"]
    assert after["product_pools"] == {"a": pools["a"], "b": pools["b"]}
    identities = after["users"]
    a_live = identities[(pools["a"], "live", "shared@example.com")]
    a_test = identities[(pools["a"], "test", "shared@example.com")]
    b_live = identities[(pools["b"], "live", "shared@example.com")]
    assert a_live["id"] == 1  # the first place keeps the row and its id
    assert len({a_live["id"], a_test["id"], b_live["id"]}) == 3
    for copy in (a_test, b_live):
        assert (copy["password_hash"], copy["name"], copy["locale"]) == (
            "argon-hash",
            "Shared",
            "cs",
        )
    assert all(u["email_verified_at"] is None for u in identities.values())
    lonely = identities[(pools["_unassigned"], "live", "lonely@example.com")]
    assert lonely["id"] == 2

    assert after["members"] == {1: a_live["id"], 2: b_live["id"], 3: a_test["id"]}
    assert after["external"] == [b_live["id"]]
    assert after["sessions"] == {"s-a": a_live["id"], "s-b": b_live["id"]}
    assert after["one_time"] == [a_test["id"]]
    assert after["notifications"] == {"Welcome": a_live["id"], "Payslip": b_live["id"]}
    assert after["unread"] == [b_live["id"]]
    assert after["workspace"] == [b_live["id"]]
    assert after["fresh"] > max(u["id"] for u in identities.values())
