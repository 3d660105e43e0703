"""`GET /api/v1/audit_log`: the console's audit log of a product, for its server.

Read with the product's live secret key only (a restricted key, a test key, a workspace
token or a console cookie is refused): the log names who changed the live keys and settings.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from auth.answers import DATETIME, INTEGER, NULLABLE_STRING, STRING, obj
from auth.credentials import ServerCaller
from auth.transport import server_key
from console.audit import entries
from console.services import console_services
from infra.api import Endpoints, Schema
from infra.bodies import Query, query_integer
from infra.errors import forbidden

PAGE_DEFAULT, PAGE_MAX = 50, 200
CURSOR_MAX = 2**31 - 1

api = Endpoints(tags=["audit"])

AUDIT_ENTRY = Schema(
    "AuditEntry",
    obj(
        ["id", "at", "actor", "action"],
        id=INTEGER,
        at=DATETIME,
        actor=obj(
            ["account_id", "email"],
            account_id={"type": ["integer", "null"]},
            email=NULLABLE_STRING,
        ),
        action=STRING,
        target=NULLABLE_STRING,
        detail={"type": "object"},
        ip=NULLABLE_STRING,
        user_agent=NULLABLE_STRING,
    ),
)
AUDIT_PAGE = obj(
    ["entries", "next_cursor"],
    entries={"type": "array", "items": AUDIT_ENTRY},
    next_cursor=NULLABLE_STRING,
)


class AuditPage(Query):
    """A page of the audit log, newest first."""

    limit: int = query_integer(default=PAGE_DEFAULT, maximum=PAGE_MAX)
    cursor: int | None = query_integer(
        default=None, maximum=CURSOR_MAX, description="`next_cursor` of the previous page"
    )


class LiveSecretKey:
    """The live secret key of the product (anything else holding the scope is refused)."""

    def __init__(self, scope: str) -> None:
        self._inner = server_key(scope)
        self.scheme_name = self._inner.scheme_name
        self.scheme = self._inner.scheme
        self.schemes = self._inner.schemes
        self.description = "The live secret key (a restricted or test key is refused)."

    async def __call__(self, connection: HTTPConnection) -> ServerCaller:
        caller = await self._inner(connection)
        if caller.kind != "secret" or caller.env != "live":
            raise forbidden()
        return caller


@api.route(
    "GET",
    "/api/v1/audit_log",
    summary="The product's console audit log, newest first (live secret key only)",
    guard=LiveSecretKey("audit:read"),
    query=AuditPage,
    answers={200: AUDIT_PAGE, 429: "rate_limited"},
)
async def audit_log(request: Request, caller: ServerCaller, query: AuditPage) -> Response:
    """Every console action on this product: who (account id and email), what (`action`,
    `target`, `detail`), when (`at`) and from where (`ip`, `user_agent`). Page on with
    `cursor=<next_cursor>` until it is null."""
    db = console_services(request).db
    rows = await entries(db, caller.product.id, limit=query.limit + 1, before_id=query.cursor)
    page = rows[: query.limit]
    next_cursor = str(page[-1].id) if len(rows) > query.limit else None
    return JSONResponse({"entries": [e.public() for e in page], "next_cursor": next_cursor})


routes = api.routes
