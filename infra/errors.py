"""The one error shape: `{"error": {"code": "…", "message": "…"}}`.

Handlers raise `HubError`; the app's exception handlers turn it (and Starlette's own HTTP
errors, and anything unexpected) into that shape with a message in the request's locale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import asyncpg
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from infra.i18n import negotiate_locale, translate
from infra.metrics import AUTH_FAILURES, RATE_LIMITED

logger = logging.getLogger("hub.errors")


class FieldError:
    """One invalid field: a code from the catalog plus the values its message needs."""

    __slots__ = ("code", "params")

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params


class HubError(Exception):
    """An error the client should see, with an HTTP status and a stable dotted code."""

    def __init__(
        self,
        status: int,
        code: str,
        *,
        fields: Mapping[str, FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.fields = dict(fields or {})
        self.headers = dict(headers or {})


def unauthorized() -> HubError:
    return HubError(401, "auth.unauthorized", headers={"WWW-Authenticate": "Bearer"})


def forbidden() -> HubError:
    return HubError(403, "auth.forbidden")


def validation_failed(fields: Mapping[str, FieldError]) -> HubError:
    return HubError(422, "validation.failed", fields=fields)


def request_locale(request: Request) -> str:
    product = getattr(request.state, "product", None)
    default = getattr(product, "default_locale", None)
    return negotiate_locale(request.query_params, request.headers, default)


def error_body(code: str, locale: str, fields: Mapping[str, FieldError] | None = None) -> dict:
    error: dict[str, object] = {"code": code, "message": translate(code, locale)}
    if fields:
        error["details"] = {
            name: {"code": f.code, "message": translate(f.code, locale, **f.params)}
            for name, f in fields.items()
        }
    return {"error": error}


def error_response(request: Request, exc: HubError) -> JSONResponse:
    body = error_body(exc.code, request_locale(request), exc.fields)
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


_HTTP_CODES = {404: "request.not_found", 405: "request.method_not_allowed"}


async def handle_hub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HubError)
    if exc.status in (401, 403):
        AUTH_FAILURES.labels(exc.code).inc()
    elif exc.status == 429:
        RATE_LIMITED.inc()
    return error_response(request, exc)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    # 404 and 405 by name; any other 4xx is a request a route refused, any 5xx is ours.
    status = exc.status_code
    code = _HTTP_CODES.get(status) or ("server.error" if status >= 500 else "validation.failed")
    return error_response(request, HubError(status, code, headers=exc.headers))


# Refused or dropped connections, a server still starting or out of connection slots.
_DATABASE_UNREACHABLE = (
    ConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
)


def is_database_unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection: an outage, not a bug."""
    return isinstance(exc, _DATABASE_UNREACHABLE)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    if is_database_unreachable(exc):
        # An outage, not a bug: 503 tells clients to retry once the database is back.
        logger.warning(
            "%s %s: the database is unreachable (%s)",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return error_response(
            request, HubError(503, "server.unavailable", headers={"Retry-After": "5"})
        )
    # The traceback goes to the log (which redacts credentials); the client gets no internals.
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, HubError(500, "server.error"))
