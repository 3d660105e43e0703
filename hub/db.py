"""The SQL connection and the shared SQLAlchemy metadata.

Every domain declares its own tables on `metadata` (auth in `auth/tables.py`) and keeps its SQL
behind small functions of its own; this module only knows how to connect.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from databases import Database
from sqlalchemy.dialects.postgresql import ARRAY

from hub.db_backends import Bound

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def normalize_url(url: str) -> str:
    """`postgres://` (Heroku style) → `postgresql://`; `databases` wants the latter."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


class _Database(Database):
    SUPPORTED_BACKENDS = {  # noqa: RUF012 (databases' own class attribute, extended)
        **Database.SUPPORTED_BACKENDS,
        "sqlite": "hub.db_backends:PooledSQLiteBackend",
        "postgresql": "hub.db_backends:CachingPostgresBackend",
    }


def connect_database(url: str) -> Database:
    """A `databases.Database` for the URL; call `await db.connect()` before use."""
    url = normalize_url(url)
    if is_sqlite(url):
        # Several connections share one file: wait for a lock instead of failing at once.
        return _Database(url, timeout=15)
    return _Database(url, min_size=1, max_size=20)


def async_engine_url(url: str) -> str:
    """The SQLAlchemy async-driver URL for Alembic (the same drivers `databases` uses)."""
    url = normalize_url(url)
    if is_sqlite(url):
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    return "postgresql+asyncpg" + url[len("postgresql") :]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (SQLite hands them back naive)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def json_column(value: Any) -> Any:
    """A JSON column's value: `databases` hands PostgreSQL's back as undecoded text."""
    return json.loads(value) if isinstance(value, str) else value


def is_unique_violation(exc: BaseException) -> bool:
    """True for a duplicate-key error from either driver (sqlite3 or asyncpg)."""
    name = type(exc).__name__
    return name in ("IntegrityError", "UniqueViolationError") and (
        "unique" in str(exc).lower() or name == "UniqueViolationError"
    )


def dialect_insert(dialect: str, table: sa.Table) -> Any:
    """INSERT with `on_conflict_do_update` in a dialect (`db.url.dialect`: sqlite or postgresql)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    return insert(table)


def bound(statement: sa.ClauseElement, **values: Any) -> Bound:
    """Run a statement built once (with `sa.bindparam`s) with these values: for hot paths.

    `statement` must be long-lived (a module constant or a `functools.cache`d builder's
    result), and must not contain expanding IN lists; use `bound_list` for lists.
    """
    return Bound(statement, values)


def bound_list(dialect: str, name: str, item_type: type[sa.types.TypeEngine]) -> sa.FromClause:
    """A table of one column `value` holding the list bound as parameter `name` (its value from
    `list_value`): a JSON array through `json_each` on SQLite, an array through `unnest` on
    PostgreSQL. The SQL text is the same for any number of items, so it is compiled once and
    the database unpacks the list in C."""
    if dialect == "sqlite":
        return sa.func.json_each(sa.bindparam(name, type_=sa.String)).table_valued("value")
    array = sa.cast(sa.bindparam(name, type_=ARRAY(item_type)), ARRAY(item_type))
    return sa.func.unnest(array).table_valued("value").render_derived()


def list_value(dialect: str, values: Sequence[Any]) -> Any:
    return json.dumps(list(values)) if dialect == "sqlite" else list(values)
