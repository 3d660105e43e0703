"""Schema migrations (Alembic), driven from code so no alembic.ini is needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from infra.db import is_sqlite, normalize_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Stored under our own key: Alembic would %-interpolate a password in sqlalchemy.url.
    config.set_main_option("hub_database_url", normalize_url(database_url).replace("%", "%%"))
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    """Bring the database to `revision`. Blocking: call it before the event loop starts."""
    command.upgrade(alembic_config(database_url), revision)
    if is_sqlite(database_url):
        asyncio.run(_enable_wal(database_url))


async def _enable_wal(database_url: str) -> None:
    # WAL lets readers and the single writer proceed together; the setting sticks to the file.
    from infra.db import connect_database

    db = connect_database(database_url)
    await db.connect()
    try:
        await db.execute("PRAGMA journal_mode=WAL")
    finally:
        await db.disconnect()
