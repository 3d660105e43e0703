"""The SQL layer under the services: cached compiled statements, bound integer lists,
SQLite's queued writers, and transactions that end whatever happens to their caller — on
SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from databases import Database

from infra.db import bound, bound_list, connect_database, list_value

scratch = sa.MetaData()
items = sa.Table(
    "db_layer_items",
    scratch,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("label", sa.String(20), nullable=False),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'layer.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = connect_database(url)
    await database.connect()
    await database.execute(sa.text("DROP TABLE IF EXISTS db_layer_items"))
    await database.execute(sa.schema.CreateTable(items))
    for i in range(1, 11):
        await database.execute(items.insert().values(id=i, label=f"item {i}"))
    yield database
    await database.execute(sa.text("DROP TABLE db_layer_items"))
    await database.disconnect()


async def test_one_statement_shape_answers_for_each_call_s_own_values(db: Database) -> None:
    # The second and third calls reuse the first call's compiled statement.
    for wanted in (3, 7, 3):
        row = await db.fetch_one(sa.select(items.c.label).where(items.c.id == wanted))
        assert row is not None and row[0] == f"item {wanted}"


async def test_in_lists_of_different_lengths_are_not_confused(db: Database) -> None:
    # Expanding IN lists change the SQL text with their length: they must not share a cache
    # entry.
    for ids in ([1, 2], [4, 5, 6, 7], [9]):
        rows = await db.fetch_all(sa.select(items.c.id).where(items.c.id.in_(ids)))
        assert sorted(r[0] for r in rows) == ids


async def test_bound_lists_of_any_length_share_one_statement(db: Database) -> None:
    dialect = db.url.dialect
    ids = bound_list(dialect, "ids", sa.BigInteger)
    by_ids = sa.select(items.c.id).where(items.c.id.in_(sa.select(ids.c.value)))
    for wanted in ([2, 4, 8], [10], list(range(1, 11))):
        rows = await db.fetch_all(bound(by_ids, ids=list_value(dialect, wanted)))
        assert sorted(r[0] for r in rows) == wanted
    labels = bound_list(dialect, "labels", sa.Text)
    by_labels = sa.select(items.c.id).where(items.c.label.in_(sa.select(labels.c.value)))
    for wanted in (["item 3", "item 5"], ["item 9"]):
        rows = await db.fetch_all(bound(by_labels, labels=list_value(dialect, wanted)))
        assert sorted(f"item {r[0]}" for r in rows) == wanted


async def test_concurrent_write_transactions_all_commit(db: Database) -> None:
    # On SQLite the writers queue on one lock instead of failing or sleeping in SQLite's
    # busy handler; on PostgreSQL they simply run.
    async def rename(i: int) -> None:
        async with db.transaction():
            await db.execute(items.update().where(items.c.id == i).values(label=f"renamed {i}"))
            await asyncio.sleep(0)  # let the others start their transactions meanwhile
            await db.execute(items.update().where(items.c.id == i).values(label=f"done {i}"))

    await asyncio.gather(*(rename(i) for i in range(1, 11)))
    rows = await db.fetch_all(sa.select(items.c.label).order_by(items.c.id))
    assert [r[0] for r in rows] == [f"done {i}" for i in range(1, 11)]


async def test_a_failed_transaction_releases_the_writers_lock(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction():
            await db.execute(items.update().where(items.c.id == 1).values(label="lost"))
            raise RuntimeError("boom")
    # The next writer is not stuck behind the rolled-back one.
    await asyncio.wait_for(
        db.execute(items.update().where(items.c.id == 2).values(label="kept")), timeout=5
    )
    labels = {r[0]: r[1] for r in await db.fetch_all(sa.select(items.c.id, items.c.label))}
    assert labels[1] == "item 1" and labels[2] == "kept"


async def test_inactive_among_tells_live_sessions_from_revoked_ones(hub, client) -> None:
    import jwt

    from auth.sessions import inactive_among
    from tests.support import api_user, bearer, create_product

    product = create_product(hub)
    _, live = await api_user(client, product["sk_live"])
    _, ended = await api_user(client, product["sk_live"])
    assert (await client.post("/api/v1/auth/logout", headers=bearer(ended))).status_code == 204
    sid = {
        name: jwt.decode(token, options={"verify_signature": False})["sid"]
        for name, token in (("live", live), ("ended", ended))
    }
    database = connect_database(hub.database_url or f"sqlite:///{hub.workdir / 'hub.db'}")
    await database.connect()
    try:
        inactive = await inactive_among(database, {sid["live"], sid["ended"], "f" * 32})
    finally:
        await database.disconnect()
    assert inactive == {sid["ended"], "f" * 32}


# -- cancellation: a unit of work always ends, and its connection always goes back -------------


async def _left_open(db: Database) -> int:
    """Connections of this database other than ours left idle in a transaction (PostgreSQL),
    or 1 when another connection holds SQLite's write lock (a plain write cannot start)."""
    if db.url.dialect == "postgresql":
        return await db.fetch_val(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
            )
        )
    import sqlite3

    other = sqlite3.connect(db.url.database, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return 1
    finally:
        other.close()
    return 0


async def _all_closed(db: Database, within: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await asyncio.wait_for(_left_open(db), timeout=2):  # a drained pool: no answer
        assert asyncio.get_running_loop().time() < deadline, "a transaction was left open"
        await asyncio.sleep(0.05)


async def test_units_of_work_cancelled_at_any_point_end_and_give_their_connection_back(
    db: Database,
) -> None:
    # Cancelled after 0, 1, 2, … turns of the event loop: at the pool, in BEGIN, in the
    # statements, in COMMIT. 60 of them are three times the pool's 20 connections.
    async def unit(i: int) -> None:
        async with db.transaction():
            await db.execute(items.update().where(items.c.id == 1).values(label=f"u{i}"))
            await db.execute(items.update().where(items.c.id == 2).values(label=f"u{i}"))

    for i in range(60):
        task = asyncio.create_task(unit(i))
        for _ in range(i % 15):
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    await _all_closed(db)
    # The pool still serves a writer at once.
    await asyncio.wait_for(
        db.execute(items.update().where(items.c.id == 3).values(label="after")), timeout=2
    )
    # Each unit committed both statements or neither.
    rows = await db.fetch_all(
        sa.select(items.c.label).where(items.c.id.in_([1, 2])).order_by(items.c.id)
    )
    first, second = (r[0] for r in rows)
    assert first == second or (first, second) == ("item 1", "item 2")


async def test_a_cancel_scope_that_cancels_every_await_still_rolls_back(db: Database) -> None:
    # anyio (Starlette's task groups) cancels each await inside a cancelled scope again, the
    # ROLLBACK's included: `databases` then left the connection checked out, mid-transaction.
    import anyio

    for i in range(25):  # more than the pool's 20 connections
        with anyio.CancelScope() as scope:
            async with db.transaction():
                await db.execute(items.update().where(items.c.id == 4).values(label=f"lost {i}"))
                scope.cancel()
                await db.execute(items.update().where(items.c.id == 5).values(label="never"))
    await _all_closed(db)
    labels = await db.fetch_all(sa.select(items.c.label).where(items.c.id.in_([4, 5])))
    assert sorted(r[0] for r in labels) == ["item 4", "item 5"]
    await asyncio.wait_for(
        db.execute(items.update().where(items.c.id == 4).values(label="after")), timeout=2
    )


@pytest.mark.postgres
async def test_postgres_sessions_carry_the_idle_in_transaction_and_statement_backstops(
    postgres_url: str,
) -> None:
    database = connect_database(postgres_url, idle_in_transaction_timeout=7, statement_timeout=0)
    await database.connect()
    try:
        idle = await database.fetch_val(sa.text("SHOW idle_in_transaction_session_timeout"))
        statement = await database.fetch_val(sa.text("SHOW statement_timeout"))
    finally:
        await database.disconnect()
    assert (idle, statement) == ("7s", "0")


def test_backstop_settings_are_read_and_checked() -> None:
    from infra.settings import Settings, SettingsError

    defaults = Settings.from_env({})
    assert (defaults.db_idle_in_transaction_timeout, defaults.db_statement_timeout) == (60, 30)
    chosen = Settings.from_env(
        {"HUB_DB_IDLE_IN_TRANSACTION_TIMEOUT": "5", "HUB_DB_STATEMENT_TIMEOUT": "0"}
    )
    assert (chosen.db_idle_in_transaction_timeout, chosen.db_statement_timeout) == (5, 0)
    for bad in ("-1", "soon"):
        with pytest.raises(SettingsError, match="HUB_DB_STATEMENT_TIMEOUT"):
            Settings.from_env({"HUB_DB_STATEMENT_TIMEOUT": bad})
