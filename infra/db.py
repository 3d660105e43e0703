"""The SQL connection and the shared SQLAlchemy metadata.

Every domain declares its own tables on `metadata` (auth in `auth/tables.py`) and keeps its SQL
behind small functions of its own; this module only knows how to connect.

`UnitOfWork` (transactions that survive their caller's cancellation) has to drive `databases`'
connection by hand, through its private state: `Database._connection_map`, and a connection's
`_connection`, `_transaction_lock` and `_transaction_stack`. `databases` offers no public way
to begin or end a transaction outside the calling task; `databases>=0.9.0,<0.10` in
pyproject.toml protects this (0.9.0 is its latest release), and tests/test_cancellation.py
checks it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from databases import Database
from databases.core import Connection
from databases.interfaces import TransactionBackend
from sqlalchemy.dialects.postgresql import ARRAY

from infra.sql_cache import Bound

logger = logging.getLogger("hub.db")

T = TypeVar("T")

# How long a COMMIT or ROLLBACK (and the connection's return to the pool) may take before it
# is given up; the pool then discards or resets the connection.
FINISH_SECONDS = 10.0
# How long shutdown waits for units of work still finishing before it closes the pool.
DRAIN_SECONDS = 5.0

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
    """`databases.Database` whose transactions survive the cancellation of their caller.

    `databases` begins, commits and rolls back in the calling task, so a task cancelled there
    (a cable reader whose client vanished, an HTTP request cancelled by its scope) abandons the
    transaction half-way: the connection is never released, stays `idle in transaction`
    holding its locks, and the pool drains. Here BEGIN, COMMIT and ROLLBACK run in tasks of
    their own, shielded from the caller's cancellation, and always hand the connection back.
    """

    SUPPORTED_BACKENDS = {  # noqa: RUF012 (databases' own class attribute, extended)
        **Database.SUPPORTED_BACKENDS,
        "sqlite": "infra.db_backends:PooledSQLiteBackend",
        "postgresql": "infra.db_backends:CachingPostgresBackend",
    }

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._unfinished: set[asyncio.Task[Any]] = set()

    def transaction(self, *, force_rollback: bool = False, **options: Any) -> UnitOfWork:  # type: ignore[override]
        return UnitOfWork(self, self.connection(), force_rollback=force_rollback, **options)

    async def to_completion(
        self, work: Awaitable[T], *, undo: Callable[[], Awaitable[Any]] | None = None
    ) -> T:
        """Run `work` in a task the caller's cancellation cannot interrupt, and wait for it.

        A cancelled caller gets its CancelledError at once (anyio cancel scopes cancel every
        await again, so waiting on would spin) while `work` finishes on its own; `undo` then
        runs after a successful `work`, for the caller who will never use its result.
        """
        task = self._track(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_report_abandoned)
            if undo is not None:
                self._track(_after(task, undo)).add_done_callback(_report_abandoned)
            raise

    def forget(self, connection: Connection) -> None:
        """The current task stops using `connection` for its statements."""
        if self._connection_map.get(asyncio.current_task()) is connection:  # type: ignore[arg-type]
            del self._connection_map[asyncio.current_task()]  # type: ignore[arg-type]

    def _track(self, work: Awaitable[T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._unfinished.add(task)
        task.add_done_callback(self._unfinished.discard)
        return task

    async def disconnect(self) -> None:
        """Let units of work still finishing end (bounded), then close the pool (bounded)."""
        if self._unfinished:
            _, late = await asyncio.wait(set(self._unfinished), timeout=DRAIN_SECONDS)
            if late:
                logger.warning("closing the database with %d unit(s) of work unfinished", len(late))
        await super().disconnect()


def _report_abandoned(task: asyncio.Task[Any]) -> None:
    """Say how work nobody waits for any more failed (asyncio would only complain at GC)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.warning("ending an abandoned transaction failed: %s: %s", type(exc).__name__, exc)


async def _after(task: asyncio.Task[Any], undo: Callable[[], Awaitable[Any]]) -> None:
    try:
        await task
    except BaseException:
        return  # nothing was begun, so nothing is left to undo
    await undo()


class UnitOfWork:
    """`async with db.transaction():` — commits on success, rolls back on any exception,
    and, whatever happens to the task inside it, ends the transaction and returns the
    connection to the pool.

    BEGIN, COMMIT and ROLLBACK run through `_Database.to_completion`, so a cancellation
    that arrives during one of them cannot cut it short: a cancelled BEGIN is followed by a
    ROLLBACK, a cancelled COMMIT still commits, and a cancellation inside the block rolls
    back. The connection is the caller's task's `databases` connection, fixed when the
    block is created, so the tasks that begin and end the transaction use the one the
    block's statements run on (and nested blocks become savepoints, as in `databases`).
    """

    def __init__(
        self, database: _Database, connection: Connection, *, force_rollback: bool, **options: Any
    ) -> None:
        self._database = database
        self._connection = connection
        self._force_rollback = force_rollback
        self._options = options
        self._backend: TransactionBackend | None = None

    async def __aenter__(self) -> UnitOfWork:
        await self._to_completion(self._begin(), undo=self._rollback)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._force_rollback:
            await self._to_completion(self._rollback())
        else:
            await self._to_completion(self._commit())

    async def _to_completion(
        self, work: Awaitable[None], undo: Callable[[], Awaitable[Any]] | None = None
    ) -> None:
        try:
            await self._database.to_completion(work, undo=undo)
        except asyncio.CancelledError:
            # The connection is still busy ending this transaction: should the caller's task
            # go on (a cancel scope it left), its next statement takes a connection of its own.
            self._database.forget(self._connection)
            raise

    async def _begin(self) -> None:
        connection = self._connection
        backend = connection._connection.transaction()
        async with connection._transaction_lock:
            is_root = not connection._transaction_stack
            await connection.__aenter__()  # acquires the pool connection for the root
            try:
                await backend.start(is_root=is_root, extra_options=self._options)
            except BaseException:
                await connection.__aexit__()
                raise
            self._backend = backend
            connection._transaction_stack.append(self)  # type: ignore[arg-type]

    async def _commit(self) -> None:
        await self._end(commit=True)

    async def _rollback(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        connection, backend = self._connection, self._backend
        assert backend is not None, "the transaction was never begun"
        async with connection._transaction_lock:
            assert connection._transaction_stack[-1] is self
            connection._transaction_stack.pop()
            self._backend = None
            try:
                async with asyncio.timeout(FINISH_SECONDS):
                    try:
                        await (backend.commit() if commit else backend.rollback())
                    finally:
                        # Even after a failed COMMIT or ROLLBACK: the pool rolls back what
                        # is still open (asyncpg's reset) or closes the connection.
                        await connection.__aexit__()
            except TimeoutError:
                ending = "COMMIT" if commit else "ROLLBACK"
                logger.error("%s took over %.0f s; given up", ending, FINISH_SECONDS)
                raise


def connect_database(
    url: str, *, idle_in_transaction_timeout: int = 60, statement_timeout: int = 30
) -> Database:
    """A `databases.Database` for the URL; call `await db.connect()` before use.

    On PostgreSQL the server itself ends a session left idle in a transaction for
    `idle_in_transaction_timeout` seconds and a statement running for `statement_timeout`
    seconds (0: no limit), a backstop should anything hold a connection anyway.
    """
    url = normalize_url(url)
    if is_sqlite(url):
        # Several connections share one file: wait for a lock instead of failing at once.
        return _Database(url, timeout=15)
    server_settings = {
        "idle_in_transaction_session_timeout": str(idle_in_transaction_timeout * 1000),
        "statement_timeout": str(statement_timeout * 1000),
    }
    return _Database(url, min_size=1, max_size=20, server_settings=server_settings)


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
