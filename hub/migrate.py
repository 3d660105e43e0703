"""Schema migrations (Alembic), driven from code so no alembic.ini is needed; and the schema
version a database is at, for the start-up check and `/readyz`.

Revisions are named here by their file's name (`0005_refresh_grace`), which says what each is.
"""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import Script, ScriptDirectory
from databases import Database

from infra.db import is_sqlite, normalize_url

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # Stored under our own key: Alembic would %-interpolate a password in sqlalchemy.url.
    config.set_main_option("hub_database_url", normalize_url(database_url).replace("%", "%%"))
    return config


def migrate(database_url: str, revision: str = "head") -> list[str]:
    """Bring the database to `revision`; the names of the revisions applied, oldest first.
    Blocking: call it before the event loop starts."""
    config = alembic_config(database_url)
    applied: list[str] = []

    def record(*, step: Any, **_: Any) -> None:
        if step.is_upgrade:
            applied.append(revision_name(step.up_revision_id))

    config.attributes["on_version_apply"] = record  # read by migrations/env.py
    command.upgrade(config, revision)
    if is_sqlite(database_url):
        asyncio.run(_enable_wal(database_url))
    return applied


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


@functools.cache
def head_revision() -> str:
    """The newest revision this hub knows (read from the files once; the first call reads
    every migration script, so make it before the event loop serves)."""
    head = _scripts().get_current_head()
    assert head is not None, "no migrations"
    return head


def _script(revision: str) -> Script | None:
    try:
        return _scripts().get_revision(revision)
    except Exception:  # alembic's CommandError (an unknown revision), or a malformed id
        return None


@functools.cache
def revision_name(revision: str) -> str:
    """`0005_refresh_grace` for `0005`; the revision itself if this hub does not know it."""
    script = _script(revision)
    return Path(script.path).stem if script is not None else revision


def knows_revision(revision: str) -> bool:
    return _script(revision) is not None


async def schema_revision(db: Database) -> str | None:
    """The revision the database is at; None if it has no hub schema (never migrated, or
    migrated all the way down). One small query when the schema is there. Several rows
    (a hand-edited table) come back joined by commas: a revision no hub is at."""
    try:
        rows = await db.fetch_all("SELECT version_num FROM alembic_version")
    except Exception:
        # The table is missing, or the database does not answer: ask which (an error from
        # the second question is the database's own, and propagates).
        if db.url.dialect == "sqlite":
            query = "SELECT count(*) > 0 FROM sqlite_master WHERE name = 'alembic_version'"
        else:
            query = "SELECT to_regclass('alembic_version') IS NOT NULL"
        if await db.fetch_val(query):
            raise
        return None
    return ",".join(sorted(str(row[0]) for row in rows)) or None


async def _enable_wal(database_url: str) -> None:
    # WAL lets readers and the single writer proceed together; the setting sticks to the file.
    from infra.db import connect_database

    db = connect_database(database_url)
    await db.connect()
    try:
        await db.execute("PRAGMA journal_mode=WAL")
    finally:
        await db.disconnect()
