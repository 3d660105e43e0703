"""Migration 0006 creates exactly the console's tables as `console/tables.py` declares them
(Alembic's own comparison of a migrated database with the metadata), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import console.tables  # noqa: F401  (registers the console's tables on the metadata)
from hub.migrate import alembic_config, migrate
from infra.db import async_engine_url, metadata
from tests.conftest import scratch_postgres
from tests.support import run_async


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'console.db'}"
        return
    with scratch_postgres() as url:
        if url is None:
            pytest.skip("PostgreSQL (DATABASE_URL) is not configured")
        yield url


async def _inspect(url: str, look: Callable[[sa.Connection], object]) -> object:
    engine = create_async_engine(async_engine_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def _compare(connection: sa.Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _console_differences(url: str) -> list[object]:
    differences = run_async(_inspect(url, _compare))

    def names_console(diff: object) -> bool:
        return "console_" in repr(diff)

    return [d for d in differences if names_console(d)]


def test_migration_0006_matches_the_console_tables(database_url):
    migrate(database_url)
    assert _console_differences(database_url) == []


def test_migration_0006_downgrades_cleanly(database_url):
    migrate(database_url)
    command.downgrade(alembic_config(database_url), "0005")
    names = run_async(_inspect(database_url, lambda c: sa.inspect(c).get_table_names()))
    assert not [n for n in names if n.startswith("console_")]
