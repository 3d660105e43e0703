"""The migrations build exactly the tables the code declares (`*/tables.py`), on SQLite and
PostgreSQL: a column, index or constraint added to one and not the other fails here, before a
deployment meets it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import auth.tables
import notifications.tables  # noqa: F401  (registers its tables on the metadata)
from hub.migrate import migrate
from infra.db import async_engine_url, metadata
from tests.conftest import scratch_postgres
from tests.support import run_async


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with scratch_postgres() as url:
        if url is None:
            pytest.skip("PostgreSQL (DATABASE_URL) is not configured")
        yield url


async def _differences(url: str) -> list:
    engine = create_async_engine(async_engine_url(url))
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
    finally:
        await engine.dispose()


def test_the_migrations_build_the_declared_tables(database_url):
    assert auth.tables.extensions.name in metadata.tables
    migrate(database_url)
    assert run_async(_differences(database_url)) == []
