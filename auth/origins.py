"""Exact-origin checks and CORS for browser-facing endpoints.

A request from a browser names its page's origin. The hub answers with
`Access-Control-Allow-Origin` only when that exact origin is on the product's allowlist, and
refuses the request before doing anything when it is not. Preflights cannot say which product
they are for (browsers send no custom header values), so they are answered for any origin some
product allows; the real request that follows is checked against its own product.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from databases import Database
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.products import Product, all_allowed_origins
from infra.errors import HubError, error_body
from infra.i18n import negotiate_locale

ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, Accept-Language, X-Product-Slug, X-Publishable-Key, "
    "Idempotency-Key"
)
EXPOSED_HEADERS = "Retry-After, X-Request-Id"
_STATE_KEY = "cors_origin"


def check_origin(request: HTTPConnection, product: Product) -> None:
    """Bind the request to `product`; 403 `origin.forbidden` for a browser origin it refuses."""
    request.state.product = product
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser, or a same-origin GET: nothing to check
    if not product.allows_origin(origin):
        raise HubError(403, "origin.forbidden")
    request.state.cors_origin = origin


class CORSMiddleware:
    """Answers preflights and adds CORS headers to responses `check_origin` approved."""

    def __init__(
        self, app: ASGIApp, database: Callable[[], Database], cache_seconds: float = 5.0
    ) -> None:
        self.app = app
        self._database = database
        self._cache_seconds = cache_seconds
        self._origins: set[str] = set()
        self._loaded_at = float("-inf")

    async def _known_origins(self) -> set[str]:
        if time.monotonic() - self._loaded_at > self._cache_seconds:
            self._origins = await all_allowed_origins(self._database())
            self._loaded_at = time.monotonic()
        return self._origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
            response = await self._preflight(origin, headers, scope)
            await response(scope, receive, send)
            return
        if origin is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, self._with_cors_headers(scope, send))

    async def _preflight(self, origin: str, headers: Headers, scope: Scope) -> Response:
        if origin not in await self._known_origins():
            # The one error shape, like every other refusal; no product is known yet, so the
            # message follows `?locale=` / Accept-Language alone.
            locale = negotiate_locale(HTTPConnection(scope).query_params, headers, None)
            body = error_body("origin.forbidden", locale)
            return JSONResponse(body, status_code=403, headers={"Vary": "Origin"})
        return Response(
            status_code=204,
            headers={
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": ALLOWED_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )

    @staticmethod
    def _with_cors_headers(scope: Scope, send: Send) -> Callable[[Message], Awaitable[None]]:
        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                response_headers.add_vary_header("Origin")
                allowed = scope.get("state", {}).get(_STATE_KEY)
                if allowed:
                    response_headers["Access-Control-Allow-Origin"] = allowed
                    response_headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        return send_with_cors
