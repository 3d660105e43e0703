"""Alembic environment: runs migrations over the same async drivers the hub uses."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import auth.tables  # noqa: F401  (each domain registers its tables on the metadata)
import console.tables  # noqa: F401
import notifications.tables  # noqa: F401
from infra.db import async_engine_url, metadata

config = context.config


def _run(connection):
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # `hub.migrate.migrate` records what it applied, to say so.
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_async_engine(async_engine_url(config.get_main_option("hub_database_url")))
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `notification-hub migrate`")
asyncio.run(_run_async())
