"""Who is calling: the one place a credential is read from a request or a WebSocket.

Every route and the cable start with a guard: `caller = await USER_TOKEN(request)`. A guard
both enforces (it answers the caller, or raises `HubError` 401/403, or 429 from a rate
limit) and documents (`scheme_name`, `scheme`, `description`, and `security` for the
OpenAPI document), so the credential a route declares is the one it checks. Guards work on
a Starlette `HTTPConnection`, so an HTTP `Request` and a `WebSocket` alike: a request
carries its bearer token in `Authorization`, a socket in the `token` query parameter
(browsers cannot set headers on a WebSocket).

The guards, by caller:
- `PUBLIC`: nobody in particular (the route checks what its body carries, if anything);
- `SITE`: a browser of a product, by publishable key or live product slug, origin checked;
- `USER_TOKEN`: a user's access token (a server key sent here is refused, and alerted
  when it came from a browser);
- `server_key(scope)`: a secret key, or a restricted key holding `scope`;
- `server_or_org_key(scope)`: those, or a workspace/OAuth token or extension key of an
  organization;
- `org_key(scope)`: a workspace/OAuth token or extension key only (per-organization routes);
- `ORG_MANAGER`: an owner's or admin's access token, or an org token with `admin` (never
  an extension key: extensions use the API, they do not manage credentials);
- `EXTENSION_INSTALLER`: the same, also telling what the installer holds (a weaker org
  token passes it only to be told which scopes it asked for beyond its own);
- `METRICS_TOKEN`: the operator's scrape token, when one is configured.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from auth import keys
from auth.credentials import PUBLISHABLE_KEY_HEADER, ServerCaller
from auth.extensions import EXTENSION_KEY_PREFIX, held_scopes
from auth.org_credentials import TOKEN_PREFIX
from auth.origins import check_origin
from auth.products import Product
from auth.ratelimit import public_key
from auth.services import auth_services
from auth.session_tokens import AccessContext
from infra.api import PUBLIC, Guard
from infra.errors import HubError, forbidden, unauthorized

# The guards by caller (the protocol and the public guard are `infra.api`'s, re-exported so
# every route takes its guard from here).
__all__ = [
    "EXTENSION_INSTALLER",
    "METRICS_TOKEN",
    "ORG_MANAGER",
    "PUBLIC",
    "SITE",
    "USER_TOKEN",
    "Guard",
    "Installer",
    "Manager",
    "SiteCaller",
    "bearer_token",
    "org_key",
    "presented_token",
    "server_key",
    "server_or_org_key",
]

PRODUCT_HEADER = "x-product-slug"
SOCKET_TOKEN_PARAMETER = "token"  # noqa: S105 (a parameter name, not a secret)

Requirement = dict[str, list[str]]


# -- reading the credential --------------------------------------------------------------


def bearer_token(connection: HTTPConnection) -> str | None:
    """The token of an `Authorization: Bearer …` header (the scheme in any case), if any."""
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def presented_token(connection: HTTPConnection) -> str | None:
    """A user's token as this kind of connection carries it: the `token` query parameter
    of a WebSocket, the bearer header of a request."""
    if connection.scope["type"] == "websocket":
        return connection.query_params.get(SOCKET_TOKEN_PARAMETER) or None
    return bearer_token(connection)


# -- the OpenAPI security schemes the guards use ---------------------------------------

SCHEMES: dict[str, dict[str, Any]] = {
    "productSlug": {"type": "apiKey", "in": "header", "name": "X-Product-Slug"},
    "publishableKey": {"type": "apiKey", "in": "header", "name": "X-Publishable-Key"},
    "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (ES256, access)"},
    "serverKey": {"type": "http", "scheme": "bearer", "description": "sk_… or rk_… key"},
    "orgToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "wksp_… workspace token or an OAuth access token",
    },
    "extensionKey": {"type": "http", "scheme": "bearer", "description": "ext_… extension key"},
    "metricsToken": {"type": "http", "scheme": "bearer", "description": "HUB_METRICS_TOKEN"},
}


class _Documented:
    """The documenting half of a guard: its primary scheme, and `security`, the OpenAPI
    requirement list (alternatives) when it accepts more than one kind of credential.
    Plain attributes, set once, so a guard satisfies `Guard` as a structural type."""

    def __init__(
        self, scheme_name: str | None, description: str, alternatives: tuple[str, ...] = ()
    ) -> None:
        names = (scheme_name, *alternatives) if scheme_name else ()
        self.scheme_name = scheme_name
        self.scheme: dict[str, Any] | None = SCHEMES[scheme_name] if scheme_name else None
        self.description = description
        self.schemes: dict[str, dict[str, Any]] = {name: SCHEMES[name] for name in names}
        self.security: list[Requirement] = [{name: []} for name in names]


# -- public and browser callers --------------------------------------------------------


@dataclass(frozen=True)
class SiteCaller:
    """A browser of a product environment (publishable keys name the environment)."""

    product: Product
    env: str


class SiteGuard(_Documented):
    def __init__(self) -> None:
        super().__init__(
            "publishableKey",
            "A publishable key in X-Publishable-Key, or a live product's slug in "
            "X-Product-Slug; a browser's Origin must be one the product allows.",
            ("productSlug",),
        )

    async def __call__(self, connection: HTTPConnection) -> SiteCaller:
        """Nothing in the request can override the environment a publishable key names.

        Refused (429) when the product's public budget is spent, but not counted here: the
        route's flow spends it after its narrow limits (per address, per account), so
        requests those refuse cannot exhaust it for everyone (see `auth/ratelimit.py`)."""
        services = auth_services(connection)
        presented = connection.headers.get(PUBLISHABLE_KEY_HEADER)
        if presented is not None:
            product, env = await services.credentials.publishable(connection, presented.strip())
        else:
            product = await services.products.for_slug(connection.headers.get(PRODUCT_HEADER))
            env = "live"
        check_origin(connection, product)
        limit = services.settings.rate_limits.public_product
        await services.limiter.check(limit, *public_key(product.id, env))
        return SiteCaller(product, env)


# -- users -----------------------------------------------------------------------------


class UserTokenGuard(_Documented):
    def __init__(self) -> None:
        super().__init__(
            "accessToken",
            "A user's access token (ES256 JWT from login, register, refresh or a server "
            "mint); its session must be live and a browser's Origin allowed by its product.",
        )

    async def __call__(self, connection: HTTPConnection) -> AccessContext:
        services = auth_services(connection)
        token = presented_token(connection)
        if token is None:
            raise unauthorized()
        await services.credentials.refuse_key_as_user_token(connection, token)
        claims, product = await services.tokens.access_claims(token)
        check_origin(connection, product)  # 403 before the session is even looked up
        return await services.tokens.access_context(claims, product)


# -- servers and organizations ---------------------------------------------------------


class ServerKeyGuard(_Documented):
    """A server credential holding `scope`: product keys, and org tokens if `org_tokens`;
    only org tokens if `org_only` (routes that answer for one organization)."""

    def __init__(self, scope: str, *, org_tokens: bool = False, org_only: bool = False) -> None:
        self.required_scope = scope
        self._org_tokens = org_tokens or org_only
        self._org_only = org_only
        if org_only:
            super().__init__(
                "orgToken",
                f"A workspace token, OAuth access token or extension key with `{scope}`.",
                ("extensionKey",),
            )
        else:
            also = ", or a workspace/OAuth token or extension key with it" if org_tokens else ""
            super().__init__(
                "serverKey",
                f"A secret key, or a restricted key with `{scope}`{also}.",
                ("orgToken", "extensionKey") if org_tokens else (),
            )

    async def __call__(self, connection: HTTPConnection) -> ServerCaller:
        services = auth_services(connection)
        presented = bearer_token(connection)
        if presented is None:
            raise unauthorized()
        caller: ServerCaller | None
        if keys.kind_of(presented) in keys.SERVER_KINDS:
            caller = await services.credentials.product_key(connection, presented)
        elif self._org_tokens:
            caller = await services.org_callers.resolve(connection, presented)
        else:
            caller = None  # a pk_ key, a user's JWT, a workspace token here: wrong kind
        if caller is None:
            raise unauthorized()
        connection.state.product = caller.product  # error messages fall back to its locale
        if not caller.allows(self.required_scope):
            raise forbidden()
        limit = services.settings.rate_limits.server_key
        await services.limiter.hit(limit, "server", caller.kind, str(caller.credential_id))
        if self._org_only and caller.organization_id is None:
            raise unauthorized()  # product keys span every organization; this is per org
        return caller


@functools.cache
def server_key(scope: str) -> ServerKeyGuard:
    return ServerKeyGuard(scope)


@functools.cache
def server_or_org_key(scope: str) -> ServerKeyGuard:
    return ServerKeyGuard(scope, org_tokens=True)


@functools.cache
def org_key(scope: str) -> ServerKeyGuard:
    return ServerKeyGuard(scope, org_only=True)


@dataclass(frozen=True)
class Manager:
    """Someone allowed to manage an organization's credentials."""

    org_id: int
    user_id: int


class OrgManagerGuard(_Documented):
    def __init__(self) -> None:
        super().__init__(
            "accessToken",
            "An organization owner's or admin's access token, or a workspace/OAuth token of "
            "the organization with `admin`.",
            ("orgToken",),
        )

    async def __call__(self, connection: HTTPConnection) -> Manager:
        presented = bearer_token(connection)
        if presented is None:
            raise unauthorized()
        if not presented.startswith(TOKEN_PREFIX):
            try:
                ctx = await USER_TOKEN(connection)
            except HubError as exc:
                # Not a user's token: it may be an OAuth access token (a JWT too).
                if exc.status != 401 or presented.count(".") != 2:
                    raise
            else:
                callers = auth_services(connection).org_callers
                if not await callers.manages(ctx.user.id, ctx.org_id, ctx.product.id, ctx.env):
                    raise forbidden()
                return Manager(ctx.org_id, ctx.user.id)
        caller = await server_or_org_key("admin")(connection)
        if caller.organization_id is None or caller.acting_user_id is None:
            raise unauthorized()  # a product key manages product keys, not org credentials
        if caller.kind == "extension":
            raise unauthorized()  # nor does an extension, whatever its manifest asked for
        return Manager(caller.organization_id, caller.acting_user_id)


@dataclass(frozen=True)
class Installer:
    """Who installs an extension: the organization, the member it acts for, the org scopes
    the credential holds, and whether it may manage the organization's credentials."""

    org_id: int
    user_id: int
    holds: frozenset[str]
    manages: bool


class ExtensionInstallerGuard(_Documented):
    def __init__(self) -> None:
        super().__init__("accessToken", ORG_MANAGER.description, ("orgToken",))

    async def __call__(self, connection: HTTPConnection) -> Installer:
        presented = bearer_token(connection) or ""
        if presented.startswith(EXTENSION_KEY_PREFIX):
            raise unauthorized()  # an extension never installs another
        try:
            manager = await ORG_MANAGER(connection)
        except HubError as refused:
            # An org token without `admin`: the route names the scopes it asked beyond its
            # own before refusing it (a plain member's access token is refused here).
            if refused.status != 403:
                raise
            caller = await auth_services(connection).org_callers.resolve(connection, presented)
            if caller is None or caller.organization_id is None or caller.acting_user_id is None:
                raise
            org_id, user_id = caller.organization_id, caller.acting_user_id
            return Installer(org_id, user_id, held_scopes(caller.scopes), manages=False)
        return Installer(manager.org_id, manager.user_id, held_scopes(None), manages=True)


# -- operators -------------------------------------------------------------------------


class MetricsTokenGuard(_Documented):
    def __init__(self) -> None:
        super().__init__(
            "metricsToken", "With HUB_METRICS_TOKEN set, `Bearer <that token>`; open otherwise."
        )

    async def __call__(self, connection: HTTPConnection) -> None:
        expected = auth_services(connection).settings.metrics_token
        if not expected:
            return
        presented = bearer_token(connection) or ""
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise unauthorized()


SITE = SiteGuard()
USER_TOKEN = UserTokenGuard()
ORG_MANAGER = OrgManagerGuard()
EXTENSION_INSTALLER = ExtensionInstallerGuard()
METRICS_TOKEN = MetricsTokenGuard()
