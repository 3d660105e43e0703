"""Which credential a request carries, what it may do, and refusing it everywhere else.

Server endpoints take `Authorization: Bearer` with
- a secret key `sk_…`: everything in its product environment;
- a restricted key `rk_…`: its scopes in its product environment;
- on the endpoints marked `org_scoped`, also a workspace token `wksp_…` or an OAuth access
  token: their scopes, inside their organization only.
Public (browser) endpoints take a publishable key `pk_…` in `X-Publishable-Key` (or name a
live product with `X-Product-Slug`).

Anything else is a 401 and changes nothing: a publishable key or a user's JWT on a server
endpoint, a secret key on a public endpoint. A secret or restricted key that arrives from a
browser (an `Origin` header, or in `X-Publishable-Key`) is refused and alerted; in production
one that arrives over plain HTTP is revoked as compromised, as the Docs API says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from databases import Database
from starlette.requests import Request

from auth import alerts, keys
from auth.alerts import SecurityAlerts
from auth.products import Product, get_product
from auth.ratelimit import RateLimiter
from auth.tables import product_keys
from infra.db import utcnow
from infra.errors import HubError, forbidden, unauthorized
from infra.settings import Settings

PUBLISHABLE_KEY_HEADER = "x-publishable-key"


@dataclass(frozen=True)
class ServerCaller:
    """What a valid server credential grants."""

    product: Product
    env: str
    kind: str  # "secret", "restricted", "workspace" or "oauth"
    credential_id: int
    # None: everything. For workspace and OAuth callers an empty set is full org access.
    scopes: frozenset[str] | None = None
    organization_id: int | None = None
    # Workspace and OAuth callers act for the org member who issued them.
    acting_user_id: int | None = None

    def allows(self, scope: str) -> bool:
        if self.scopes is None:
            return True
        if self.organization_id is not None:
            return not self.scopes or "admin" in self.scopes or scope in self.scopes
        return scope in self.scopes


@dataclass(frozen=True)
class Stored:
    """A stored server credential that matched what was presented (for checks and alerts)."""

    table: sa.Table
    id: int
    prefix: str
    env: str
    product: Product

    def names(self) -> dict[str, object]:
        # What an alert may say about the credential: never the secret itself.
        return {"credential": self.table.name, "credential_id": self.id, "prefix": self.prefix}


def bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Credentials:
    def __init__(
        self, db: Database, settings: Settings, limiter: RateLimiter, alerts: SecurityAlerts
    ) -> None:
        self.db = db
        self.settings = settings
        self.limiter = limiter
        self.alerts = alerts
        self.last_used = keys.LastUsed(db)
        # Workspace tokens and OAuth tokens plug in here (auth/org_credentials.py).
        self.org_resolver: OrgCredentialResolver | None = None

    # -- server API -----------------------------------------------------------------------

    async def server_caller(
        self, request: Request, scope: str, *, org_scoped: bool = False
    ) -> ServerCaller:
        """The caller of a server endpoint that needs `scope`: 401 or 403 otherwise."""
        presented = bearer(request)
        if presented is None:
            raise unauthorized()
        caller: ServerCaller | None
        if keys.kind_of(presented) in keys.SERVER_KINDS:
            caller = await self._product_key(request, presented)
        elif org_scoped and self.org_resolver is not None:
            caller = await self.org_resolver.resolve(request, presented)
        else:
            caller = None  # a pk_ key, a user's JWT, a workspace token here: wrong kind
        if caller is None:
            raise unauthorized()
        request.state.product = caller.product  # error messages fall back to its locale
        if not caller.allows(scope):
            raise forbidden()
        await self.limiter.hit(
            self.settings.rate_limits.server_key, "server", caller.kind, str(caller.credential_id)
        )
        return caller

    async def _product_key(self, request: Request, presented: str) -> ServerCaller | None:
        found = await self._lookup(request, presented)
        if found is None:
            return None
        key, stored = found
        self.refuse_from_browser(request, stored)
        await self.refuse_plain_http(request, stored)
        await self.last_used.touch(product_keys, key.id)
        scopes = frozenset(key.scopes or ()) if key.kind == "restricted" else None
        return ServerCaller(stored.product, key.env, key.kind, key.id, scopes)

    async def _lookup(
        self, request: Request, presented: str
    ) -> tuple[keys.ProductKey, Stored] | None:
        """The live product key with this plaintext (and its product); an unknown key is
        counted, a revoked one alerted."""
        key = await keys.find_key(self.db, presented)
        if key is None:
            self.alerts.failed_lookup(client_address(request))
            return None
        product = await get_product(self.db, key.product_id)
        if product is None:
            return None
        stored = Stored(product_keys, key.id, key.prefix, key.env, product)
        if not key.active:
            self.revoked_used(stored)
            return None
        return key, stored

    def revoked_used(self, stored: Stored) -> None:
        self.alerts.fire(alerts.REVOKED_KEY_USED, stored.product, stored.env, **stored.names())

    def refuse_from_browser(self, request: Request, stored: Stored) -> None:
        """A server credential sent by a browser is in client code: refuse and alert."""
        if (
            request.headers.get("origin") is not None
            or request.headers.get(PUBLISHABLE_KEY_HEADER) is not None
        ):
            self.alerts.fire(
                alerts.KEY_IN_BROWSER,
                stored.product,
                stored.env,
                origin=request.headers.get("origin", "-"),
                **stored.names(),
            )
            raise HubError(401, "auth.key_in_browser")

    async def refuse_plain_http(self, request: Request, stored: Stored) -> None:
        """Production: a server credential sent over plain HTTP is revoked as compromised."""
        # The scheme is the client's: uvicorn takes X-Forwarded-Proto from trusted proxies only.
        if not self.settings.production or request.url.scheme != "http":
            return
        values: dict[str, object] = {"revoked_at": utcnow()}
        if "revoked_reason" in stored.table.c:
            values["revoked_reason"] = "compromised"
        await self.db.execute(
            stored.table.update().where(stored.table.c.id == stored.id).values(**values)
        )
        self.alerts.fire(alerts.COMPROMISED_KEY, stored.product, stored.env, **stored.names())
        raise HubError(401, "auth.key_compromised")

    # -- public (browser) endpoints -------------------------------------------------------

    async def publishable(self, request: Request, presented: str) -> tuple[Product, str]:
        """The product environment a `pk_` key names; 401 for anything else."""
        kind = keys.kind_of(presented)
        if kind is None:
            self.alerts.failed_lookup(client_address(request))
            raise unauthorized()
        found = await self._lookup(request, presented)
        if found is None:
            raise unauthorized()
        key, stored = found
        if key.kind != "publishable":
            self.refuse_from_browser(request, stored)
            raise unauthorized()
        await self.last_used.touch(product_keys, key.id)
        return stored.product, key.env

    async def refuse_key_as_user_token(self, request: Request, presented: str) -> None:
        """A server key where a user's token belongs: alert when it came from a browser."""
        if keys.kind_of(presented) not in keys.SERVER_KINDS:
            return
        found = await self._lookup(request, presented)
        if found is not None:
            self.refuse_from_browser(request, found[1])
        raise unauthorized()


class OrgCredentialResolver(Protocol):
    """Resolves organization-scoped credentials (workspace tokens, OAuth access tokens)."""

    async def resolve(self, request: Request, presented: str) -> ServerCaller | None: ...


def credentials(request: Request) -> Credentials:
    return request.app.state.credentials


async def require_server_caller(
    request: Request, scope: str, *, org_scoped: bool = False
) -> ServerCaller:
    """Shorthand for route handlers."""
    return await credentials(request).server_caller(request, scope, org_scoped=org_scoped)
