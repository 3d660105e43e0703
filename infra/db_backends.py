"""`databases` backends tuned for the hub: compiled statements are cached, SQLite writes queue.

`databases` compiles every statement from scratch on every call; on the publish path that was
half the CPU of a request. SQLAlchemy's own engine avoids it with a cache keyed by the
statement's structure (`_generate_cache_key`, the values extracted as parameters); the
connections here do the same. Statements whose SQL text depends on their values (expanding
`IN` lists) are compiled each time, as before. PostgreSQL connections go back to the pool
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
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
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
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.ddl import DDLElement

logger = logging.getLogger("hub.db")

CACHE_SIZE = 512
CLOSE_SECONDS = 5.0


class Bound:
    """A statement built once (with `sa.bindparam` placeholders) and the values for one call.

    The hot paths pass these instead of building a statement per call: the compiled form is
    found by the statement's identity, so neither building nor cache-key hashing is repeated.
    """

    __slots__ = ("statement", "values")

    def __init__(self, statement: ClauseElement, values: dict[str, Any]) -> None:
        self.statement = statement
        self.values = values


class _Template:
    """A compiled statement ready to take new parameter values."""

    __slots__ = ("compiled", "keys", "sql")

    def __init__(self, compiled: SQLCompiler, sql: str, keys: list[str]) -> None:
        self.compiled = compiled
        self.sql = sql
        self.keys = keys

    def args(self, extracted: Any = None, values: dict[str, Any] | None = None) -> list[Any]:
        if values is not None:
            params = self.compiled.construct_params(params=values)
        else:
            params = self.compiled.construct_params(extracted_parameters=extracted)
        processors = self.compiled._bind_processors
        return [
            processors[key](params[key]) if key in processors else params[key] for key in self.keys
        ]


class _CompiledCache:
    def __init__(self, dialect: Dialect, numbered: bool) -> None:
        self._dialect = dialect
        # PostgreSQL (asyncpg) takes $1…$n: the dialect's pyformat names become numbers.
        self._numbered = numbered
        self._templates: OrderedDict[Any, _Template] = OrderedDict()
        self._bound: dict[int, _Template] = {}
        self._keep_alive: list[ClauseElement] = []  # ids stay unique while these live

    def lookup(self, query: ClauseElement | Bound) -> tuple[_Template, list[Any]] | None:
        """The cached template and this call's arguments, or None if it cannot be cached."""
        if isinstance(query, Bound):
            template = self._bound.get(id(query.statement))
            if template is None:
                compiled = query.statement.compile(dialect=self._dialect)
                if compiled.post_compile_params or compiled.literal_execute_params:
                    raise ValueError("a Bound statement must not expand IN lists")
                # Bound statements are module-level constants: kept for the process's life.
                template = self._bound[id(query.statement)] = self._template(compiled)
                self._keep_alive.append(query.statement)
            return template, template.args(values=query.values)
        if isinstance(query, DDLElement):
            return None
        cache_key = query._generate_cache_key()
        if cache_key is None:
            return None
        template = self._templates.get(cache_key.key)
        if template is None:
            compiled = query.compile(dialect=self._dialect, cache_key=cache_key)
            if compiled.post_compile_params or compiled.literal_execute_params:
                return None
            template = self._template(compiled)
            self._templates[cache_key.key] = template
            if len(self._templates) > CACHE_SIZE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(cache_key.key)
        return template, template.args(cache_key.bindparams)

    def _template(self, compiled: Any) -> _Template:
        if self._numbered:
            keys = sorted(compiled.params)
            mapping = {key: f"${i}" for i, key in enumerate(keys, start=1)}
            return _Template(compiled, compiled.string % mapping, keys)
        return _Template(compiled, compiled.string, list(compiled.positiontup or ()))


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
        self.compiled_cache = _CompiledCache(self._dialect, numbered=True)

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
    def __init__(self, pool: _SQLitePool, dialect: Dialect, cache: _CompiledCache) -> None:
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

    def _writes_alone(self, query: ClauseElement | Bound) -> bool:
        statement = query.statement if isinstance(query, Bound) else query
        return not self.holds_write_lock and not isinstance(statement, sa.Select)

    async def fetch_all(self, query: ClauseElement) -> Any:
        if self._writes_alone(query):
            async with self.pool.write_lock:
                return await super().fetch_all(query)
        return await super().fetch_all(query)

    async def fetch_one(self, query: ClauseElement) -> Any:
        if self._writes_alone(query):
            async with self.pool.write_lock:
                return await super().fetch_one(query)
        return await super().fetch_one(query)

    async def execute(self, query: ClauseElement) -> Any:
        if self._writes_alone(query):
            async with self.pool.write_lock:
                return await super().execute(query)
        return await super().execute(query)


class PooledSQLiteBackend(SQLiteBackend):
    def __init__(self, database_url: DatabaseURL | str, **options: Any) -> None:
        super().__init__(database_url, **options)
        self._pool = _SQLitePool(self._database_url, **options)
        self._cache = _CompiledCache(self._dialect, numbered=False)

    def connection(self) -> _SQLiteConnection:
        return _SQLiteConnection(self._pool, self._dialect, self._cache)

    async def disconnect(self) -> None:
        await self._pool.close()
        await super().disconnect()
