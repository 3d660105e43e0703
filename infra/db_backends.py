"""`databases` backends tuned for the hub: compiled statements are cached, SQLite writes queue.

Statements are compiled once and reused through `infra/sql_cache.py` (on the publish path,
compiling per call was half the CPU of a request). PostgreSQL connections go back to the pool
without asyncpg's reset query.

Returning a connection is safe against the caller's cancellation: the backend forgets the
connection before it awaits the pool, so a release cut short by a cancellation (the pool
finishes it anyway) cannot leave the connection looking acquired. Closing the PostgreSQL
pool is bounded: connections still out after `CLOSE_SECONDS` are terminated, so shutdown
never waits forever on one.

SQLite lets one connection write at a time and makes the others sleep in its busy handler
(1, 2, 5 … 100 ms) until the lock is free, which turned a burst of concurrent writes into
seconds of latency. Write transactions and writes outside transactions therefore take a
process-wide asyncio lock, so they queue without sleeping; reads never wait (WAL mode).

What this relies on beyond public APIs, and the bounds in pyproject.toml that protect it:

- `databases>=0.9.0,<0.10`: `databases` has no extension API, so these classes subclass its
  backends, pool, connections and SQLite transaction, and use their private attributes
  (`_connection`, `_pool`, `_dialect`, `_database`, `_database_url`, `_is_root`), the shape
  of `_compile`'s result and `CompilationContext`. 0.9.0 (2024) is its latest release.
- `sqlalchemy>=2.0.7,<2.2`: `_compile` must hand `databases` what its own `_compile` does,
  which is private compiler state: `_result_columns` (both backends), and for SQLite's result
  metadata the `result_column_struct` made of `_result_columns`, `_ordered_columns`,
  `_textual_ordered_columns`, `_ad_hoc_textual` and `_loose_column_name_matching`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiosqlite
import asyncpg
import sqlalchemy as sa
from databases import DatabaseURL
from databases.backends.postgres import PostgresBackend, PostgresConnection
from databases.backends.sqlite import (
    CompilationContext,
    SQLiteBackend,
    SQLiteConnection,
    SQLitePool,
    SQLiteTransaction,
)
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement

from infra.sql_cache import Bound, CompiledCache

logger = logging.getLogger("hub.db")

CLOSE_SECONDS = 5.0


# -- PostgreSQL ---------------------------------------------------------------------------


class _PostgresConnection(PostgresConnection):
    def __init__(self, database: CachingPostgresBackend, dialect: Dialect) -> None:
        super().__init__(database, dialect)
        self._cache = database.compiled_cache

    def _compile(self, query: ClauseElement) -> tuple[str, list[Any], Any]:
        found = self._cache.lookup(query)
        if found is None:
            return super()._compile(query)
        template, args = found
        return template.sql, args, template.compiled._result_columns

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None, "Connection is not acquired"
        # asyncpg shields the release itself, and rolls back a transaction left open.
        await self._database._pool.release(connection)


class _AsyncpgConnection(asyncpg.Connection):
    """Returned to the pool as is: the hub sets no session state, takes no advisory locks
    and keeps no cursors or LISTENs, so asyncpg's reset query (one more round trip after
    every statement `databases` runs outside a transaction) has nothing to undo."""

    def get_reset_query(self) -> str:
        return ""


class CachingPostgresBackend(PostgresBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, connection_class=_AsyncpgConnection, **options)
        self.compiled_cache = CompiledCache(self._dialect, numbered=True)

    def connection(self) -> _PostgresConnection:
        return _PostgresConnection(self, self._dialect)

    async def disconnect(self) -> None:
        pool, self._pool = self._pool, None
        assert pool is not None, "DatabaseBackend is not running"
        try:
            # asyncpg terminates every connection when its close() is interrupted.
            await asyncio.wait_for(pool.close(), CLOSE_SECONDS)
        except TimeoutError:
            logger.warning("connections still in use after %.0f s: terminated", CLOSE_SECONDS)


# -- SQLite -------------------------------------------------------------------------------


class _SQLitePool(SQLitePool):
    """Keeps idle SQLite connections for reuse.

    `databases` opens a new aiosqlite connection (and with it a new thread) for every
    statement outside a transaction; reusing them takes that cost off every request.
    """

    def __init__(self, url: DatabaseURL, **options: Any) -> None:
        self._keep = int(options.pop("keep", 8))
        super().__init__(url, **options)
        self._idle: list[aiosqlite.Connection] = []
        self.write_lock = asyncio.Lock()

    async def acquire(self) -> aiosqlite.Connection:
        if self._idle:
            return self._idle.pop()
        return await super().acquire()

    async def release(self, connection: aiosqlite.Connection) -> None:
        if len(self._idle) < self._keep and connection.in_transaction is False:
            self._idle.append(connection)
        else:
            await super().release(connection)

    async def close(self) -> None:
        while self._idle:
            await super().release(self._idle.pop())


class _SQLiteTransaction(SQLiteTransaction):
    """A root transaction holds the write lock from BEGIN to COMMIT/ROLLBACK."""

    _connection: _SQLiteConnection

    async def start(self, is_root: bool, extra_options: dict[Any, Any]) -> None:
        if is_root:
            await self._connection.pool.write_lock.acquire()
            self._connection.holds_write_lock = True
        try:
            await super().start(is_root, extra_options)
        except BaseException:
            self._release(is_root)
            raise

    async def commit(self) -> None:
        try:
            await super().commit()
        finally:
            self._release(self._is_root)

    async def rollback(self) -> None:
        try:
            await super().rollback()
        finally:
            self._release(self._is_root)

    def _release(self, is_root: bool) -> None:
        if is_root and self._connection.holds_write_lock:
            self._connection.holds_write_lock = False
            self._connection.pool.write_lock.release()


class _SQLiteConnection(SQLiteConnection):
    def __init__(self, pool: _SQLitePool, dialect: Dialect, cache: CompiledCache) -> None:
        super().__init__(pool, dialect)
        self.pool = pool
        self.holds_write_lock = False
        self._cache = cache

    def transaction(self) -> _SQLiteTransaction:
        return _SQLiteTransaction(self)

    async def release(self) -> None:
        connection, self._connection = self._connection, None
        assert connection is not None, "Connection is not acquired"
        await self._pool.release(connection)

    def _compile(self, query: ClauseElement) -> tuple[str, list[Any], Any, Any]:
        found = self._cache.lookup(query)
        if found is None:
            return super()._compile(query)
        template, args = found
        compiled = template.compiled
        context = self._dialect.execution_ctx_cls()
        context.dialect = self._dialect
        context.result_column_struct = (
            compiled._result_columns,
            compiled._ordered_columns,
            compiled._textual_ordered_columns,
            compiled._ad_hoc_textual,
            compiled._loose_column_name_matching,
        )
        return template.sql, args, compiled._result_columns, CompilationContext(context)

    def _write_turn(self, query: ClauseElement | Bound) -> AbstractAsyncContextManager[Any]:
        """The write lock for a write outside a transaction (a transaction holds it already)."""
        statement = query.statement if isinstance(query, Bound) else query
        if self.holds_write_lock or isinstance(statement, sa.Select):
            return contextlib.nullcontext()
        return self.pool.write_lock

    async def fetch_all(self, query: ClauseElement) -> Any:
        async with self._write_turn(query):
            return await super().fetch_all(query)

    async def fetch_one(self, query: ClauseElement) -> Any:
        async with self._write_turn(query):
            return await super().fetch_one(query)

    async def execute(self, query: ClauseElement) -> Any:
        async with self._write_turn(query):
            return await super().execute(query)


class PooledSQLiteBackend(SQLiteBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._pool = _SQLitePool(self._database_url, **options)
        self._cache = CompiledCache(self._dialect, numbered=False)

    def connection(self) -> _SQLiteConnection:
        return _SQLiteConnection(self._pool, self._dialect, self._cache)

    async def disconnect(self) -> None:
        await self._pool.close()
        await super().disconnect()
