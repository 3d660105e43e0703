"""A cache of compiled SQL statements, so a statement's SQL is built once, not per call.

`databases` compiles every statement from scratch on every call; on the publish path that was
half the CPU of a request. SQLAlchemy's own engine avoids it with a cache keyed by the
statement's structure (the values extracted as parameters); this cache does the same for the
`databases` backends in `infra/db_backends.py`. Statements whose SQL text depends on their
values (expanding `IN` lists) are not cached: they are compiled each time, as before. The hot
paths go one step further with `Bound`: a statement built once, found by its identity.

SQLAlchemy is used through public APIs (`compile(cache_key=…)`, `construct_params`,
`positiontup`, `bind_names` + `escaped_bind_names`, and each type's
`dialect_impl(…).bind_processor(…)`), save one: the cache key comes from
`_generate_cache_key()`, the method SQLAlchemy's own statement cache calls (its result,
`CacheKey`, is public; no public method makes one). `sqlalchemy<2.2` in pyproject.toml
protects it; the method has kept its name and result since 1.4.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.ddl import DDLElement

CACHE_SIZE = 512  # statements built per call (not `Bound`) whose compiled forms are kept


class Bound:
    """A statement built once (with `sa.bindparam` placeholders) and the values for one call.

    The hot paths pass these instead of building a statement per call: the compiled form is
    found by the statement's identity, so neither building nor cache-key hashing is repeated.
    """

    __slots__ = ("statement", "values")

    def __init__(self, statement: ClauseElement, values: dict[str, Any]) -> None:
        self.statement = statement
        self.values = values


class Template:
    """A compiled statement ready to take new parameter values."""

    __slots__ = ("compiled", "slots", "sql")

    def __init__(self, compiled: SQLCompiler, sql: str, keys: list[str]) -> None:
        self.compiled = compiled
        self.sql = sql
        processors = _bind_processors(compiled)
        # (parameter name, its DB-API conversion or None), in the order the SQL takes them.
        self.slots = [(key, processors.get(key)) for key in keys]

    def args(self, extracted: Any = None, values: dict[str, Any] | None = None) -> list[Any]:
        if values is not None:
            params = self.compiled.construct_params(params=values)
        else:
            params = self.compiled.construct_params(extracted_parameters=extracted)
        return [
            params[key] if process is None else process(params[key]) for key, process in self.slots
        ]


def _bind_processors(compiled: SQLCompiler) -> dict[str, Callable[[Any], Any]]:
    """Each parameter's conversion to its DB-API value, keyed as `construct_params` keys the
    values, through the public type API (what the engine memoizes in `_bind_processors`)."""
    dialect = compiled.dialect
    escaped = compiled.escaped_bind_names
    processors = {}
    for bindparam, name in compiled.bind_names.items():
        process = bindparam.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            processors[escaped.get(name, name)] = process
    return processors


def _cacheable(compiled: SQLCompiler) -> bool:
    """False for SQL whose text depends on the values (expanding IN lists, literal renders) or
    whose parameters are tuples (one value, several DB-API values)."""
    return not (
        compiled.post_compile_params
        or compiled.literal_execute_params
        or any(isinstance(bp.type, sa.TupleType) for bp in compiled.bind_names)
    )


class CompiledCache:
    """Compiled statements for one dialect, by structure (LRU) and by identity (`Bound`)."""

    def __init__(self, dialect: Dialect, numbered: bool) -> None:
        self._dialect = dialect
        # PostgreSQL (asyncpg) takes $1…$n: the dialect's pyformat names become numbers.
        self._numbered = numbered
        self._templates: OrderedDict[Any, Template] = OrderedDict()
        self._bound: dict[int, Template] = {}
        self._keep_alive: list[ClauseElement] = []  # ids stay unique while these live

    def lookup(self, query: ClauseElement | Bound) -> tuple[Template, list[Any]] | None:
        """The cached template and this call's arguments, or None if it cannot be cached."""
        if isinstance(query, Bound):
            template = self._bound.get(id(query.statement))
            if template is None:
                compiled = query.statement.compile(dialect=self._dialect)
                if not _cacheable(compiled):
                    raise ValueError("a Bound statement must not expand IN lists or bind tuples")
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
            if not _cacheable(compiled):
                return None
            template = self._template(compiled)
            self._templates[cache_key.key] = template
            if len(self._templates) > CACHE_SIZE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(cache_key.key)
        return template, template.args(cache_key.bindparams)

    def _template(self, compiled: Any) -> Template:
        if self._numbered:
            keys = sorted(compiled.params)
            mapping = {key: f"${i}" for i, key in enumerate(keys, start=1)}
            return Template(compiled, compiled.string % mapping, keys)
        # `positiontup` names the parameters unescaped; `construct_params` keys them escaped.
        escaped = compiled.escaped_bind_names
        keys = [escaped.get(name, name) for name in compiled.positiontup or ()]
        return Template(compiled, compiled.string, keys)
