"""One declaration per route: its summary, guard, body, query and answers beside its handler.

An `Endpoint` is a Starlette `Route` that runs the declaration before the handler: the guard
(which both enforces and documents who may call), then the query and the body (strict JSON
via `read_json`, then the declared `Body` type, 422 with every field error). The handler gets
`(request, caller)` plus `body=` / `query=` when declared. `hub.openapi` writes the OpenAPI
document by walking `app.routes` and reading these declarations, so nothing is written twice.

    api = Endpoints(tags=["auth"])

    @api.route("POST", "/api/v1/auth/login", summary="Log in", guard=SITE,
               body=Login, answers={200: TOKEN_ANSWER, 401: "auth.invalid_credentials"})
    async def login(request: Request, site: SiteCaller, body: Login) -> Response: ...

    routes = api.routes
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from infra.bodies import Body, Query
from infra.http import read_json
from infra.settings import Settings

JSON = "application/json"
BodyT = TypeVar("BodyT", bound=Body)


@runtime_checkable
class Guard(Protocol):
    """Who may call a route. Awaiting it returns the caller or raises `HubError` (401/403);
    its scheme documents the credential in OpenAPI. A guard that accepts one of several
    credentials may also expose `schemes: Mapping[str, dict]` (the alternatives, each a
    securityScheme), which the document lists instead of `scheme_name`."""

    scheme_name: str | None  # the OpenAPI securitySchemes key; None: a public route
    scheme: dict[str, Any] | None  # the securityScheme object
    description: str

    async def __call__(self, connection: HTTPConnection) -> Any: ...


class PublicGuard:
    """No credential: anyone may call (the handler may still check what the body proves)."""

    scheme_name = None
    scheme = None
    description = "Public: no credential"

    async def __call__(self, connection: HTTPConnection) -> None:
        return None


PUBLIC = PublicGuard()


def security_schemes(guard: Guard) -> dict[str, dict[str, Any]]:
    """The securitySchemes a guard accepts (any one of them), by name; {} for a public one."""
    alternatives = getattr(guard, "schemes", None)
    if alternatives:
        return dict(alternatives)
    if guard.scheme_name is None:
        return {}
    return {guard.scheme_name: dict(guard.scheme or {})}


@dataclass(frozen=True)
class Schema:
    """A named answer shape (a component of the document)."""

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """One documented answer: a description and, unless empty, a schema and media type."""

    description: str
    schema: Schema | dict[str, Any] | None = None
    media_type: str = JSON


# The one error shape (`infra.errors`), a component of every document.
ERROR = Schema(
    "Error",
    {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string", "description": "in the request's locale"},
                    "details": {
                        "type": "object",
                        "description": "422: one entry per invalid field",
                        "additionalProperties": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            }
        },
    },
)

# What each error status means, for the document (an answer adds its codes).
ERROR_TEXT = {
    400: "Malformed request (JSON, product, token, NUL in the path or query)",
    401: "Missing, invalid, expired or revoked credential, or one of the wrong kind",
    403: "Valid credential without the scope or role, or a browser origin that is refused",
    404: "No such resource here",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Invalid fields (listed in `details`)",
    429: "Rate limited (see Retry-After)",
    503: "Unavailable",
}
# What `answers` maps a status to: an error code or codes (the `Error` shape), a named shape,
# a Body/Shape type, an `Answer`, or None (an empty answer).
AnswerSpec = str | tuple[str, ...] | Schema | Answer | type | None
Handler = Callable[..., Awaitable[Response]]


def app_settings(request: Request) -> Settings:
    """The settings the app was built with (the one place a route reads them from): every
    app keeps its services, settings among them, as `app.state.services` (`hub.services`)."""
    return request.app.state.services.settings


def settings_body_limit(settings: Settings) -> int:
    return settings.max_body_bytes


class Endpoint(Route):
    """A route with its declaration; `run` enforces it and calls the handler."""

    def __init__(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        summary: str,
        guard: Guard,
        answers: Mapping[int, AnswerSpec],
        body: type[Body] | None = None,
        body_required: bool = True,
        query: type[Query] | None = None,
        tags: Sequence[str] = (),
        description: str | None = None,
        body_limit: Callable[[Settings], int] = settings_body_limit,
    ) -> None:
        if not isinstance(guard, Guard):
            raise TypeError(f"{method} {path}: the guard does not follow infra.api.Guard")
        self.handler = handler
        self.summary = summary
        self.guard = guard
        self.answers = dict(answers)
        self.body = body
        self.body_required = body_required
        self.query = query
        self.tags = list(tags)
        self.description = description or _docstring(handler)
        self.body_limit = body_limit
        super().__init__(path, self.run, methods=[method], name=handler.__name__)

    @property
    def method(self) -> str:
        return next(m for m in self.methods or () if m != "HEAD")

    async def run(self, request: Request) -> Response:
        caller = await self.guard(request)
        extra: dict[str, Any] = {}
        settings = app_settings(request)
        if self.query is not None:
            extra["query"] = self.query.parse(request.query_params, settings)
        if self.body is not None and self.body_required and self.body.media_type == JSON:
            extra["body"] = await read_body(request, self.body, self.body_limit)
        return await self.handler(request, caller, **extra)


async def read_body(
    request: Request, body: type[BodyT], limit: Callable[[Settings], int] = settings_body_limit
) -> BodyT:
    """The request's JSON body as `body`: 415/413/400 as `read_json` says, 422 listing every
    invalid field. Endpoints call it for a required body; a handler whose body is optional
    (`body_required=False`: logout reads one only without an access token) calls it itself."""
    settings = app_settings(request)
    data = await read_json(request, limit(settings))
    return body.parse(data, settings, headers=request.headers)


def _docstring(handler: Handler) -> str | None:
    return " ".join(handler.__doc__.split()) if handler.__doc__ else None


@dataclass
class Endpoints:
    """The endpoints of one route module: `@api.route(…)` declares, `api.routes` mounts."""

    tags: Sequence[str] = ()
    routes: list[Endpoint] = field(default_factory=list)

    def route(self, method: str, path: str, **declaration: Any) -> Callable[[Handler], Handler]:
        declaration.setdefault("tags", self.tags)

        def declare(handler: Handler) -> Handler:
            self.routes.append(Endpoint(method, path, handler, **declaration))
            return handler  # still a plain function: callable from tests and other handlers

        return declare
