"""Which credential a request carries, what it may do, and refusing it everywhere else.

Server endpoints take `Authorization: Bearer` with
- a secret key `sk_…`: everything in its product environment;
- a restricted key `rk_…`: its scopes in its product environment;
- on the endpoints marked `org_scoped`, also a workspace token `wksp_…`, an OAuth access
  token or an extension key `ext_…`: their scopes, inside their organization only.
Public (browser) endpoints take a publishable key `pk_…` in `X-Publishable-Key` (or name a
live product with `X-Product-Slug`).

Anything else is a 401 and changes nothing: a publishable key or a user's JWT on a server
endpoint, a secret key on a public endpoint. A secret or restricted key that arrives from a
browser (an `Origin` header, or in `X-Publishable-Key`) is refused and alerted; in production
one that arrives over plain HTTP is revoked as compromised, as the Docs API says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from databases import Database
from starlette.requests import HTTPConnection

from auth import alerts, keys
from auth.alerts import SecurityAlerts
from auth.credential_secrets import hash_secret
from auth.key_cache import KeyCache
from auth.products import Product, get_product
from auth.tables import product_keys
from infra.db import utcnow
from infra.errors import HubError, unauthorized
from infra.settings import Settings

PUBLISHABLE_KEY_HEADER = "x-publishable-key"

# Tells every hub process (this one included) that a product or one of its keys changed.
AnnounceProductChanged = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class ServerCaller:
    """What a valid server credential grants."""

    product: Product
    env: str
    kind: str  # "secret", "restricted", "workspace", "oauth" or "extension"
    credential_id: int
    # None: everything. For workspace and OAuth callers an empty set is full org access.
    scopes: frozenset[str] | None = None
    organization_id: int | None = None
    # Workspace, OAuth and extension callers act for the org member who issued them.
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
    # The column whose timestamp stops the credential (an extension is uninstalled).
    revoked_column: str = "revoked_at"

    def names(self) -> dict[str, object]:
        # What an alert may say about the credential: never the secret itself.
        return {"credential": self.table.name, "credential_id": self.id, "prefix": self.prefix}


def client_address(connection: HTTPConnection) -> str:
    return connection.client.host if connection.client else "unknown"


class Credentials:
    """Looks up the product keys a caller presents and refuses them where they do not
    belong; which credential a route takes is `auth/transport.py`'s guards' business."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        alerts: SecurityAlerts,
        live_keys: KeyCache,
        announce_product_changed: AnnounceProductChanged | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.alerts = alerts
        self.last_used = keys.LastUsed(db)
        # Shared with the product directory: one change forgets the keys and the product.
        self.live_keys = live_keys
        self._announce_product_changed = announce_product_changed

    async def product_changed(self, product_id: int) -> None:
        """A product or one of its keys changed (in SQL, committed): this process forgets
        what it cached of it now, every other one when the announcement reaches it."""
        self.live_keys.forget_product(product_id)
        if self._announce_product_changed is not None:
            await self._announce_product_changed(product_id)

    # -- server API -----------------------------------------------------------------------

    async def product_key(self, request: HTTPConnection, presented: str) -> ServerCaller | None:
        """The caller a secret or restricted key makes, or None for an unknown or revoked one."""
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
        self, request: HTTPConnection, presented: str
    ) -> tuple[keys.ProductKey, Stored] | None:
        """The live product key with this plaintext (and its product); an unknown key is
        counted, a revoked one alerted. Live keys come from `live_keys` when it has them."""
        digest = hash_secret(presented)
        cached = self.live_keys.get(digest)
        if cached is not None:
            key, product = cached
            return key, Stored(product_keys, key.id, key.prefix, key.env, product)
        generation = self.live_keys.generation
        key = await keys.find_key_by_hash(self.db, digest)
        if key is None:
            self.alerts.failed_lookup(client_address(request))
            return None
        product = await get_product(self.db, key.product_id)
        if product is None:
            return None
        self.live_keys.put(digest, key, product, generation)
        stored = Stored(product_keys, key.id, key.prefix, key.env, product)
        if not key.active:
            self.revoked_used(stored, client_address(request))
            return None
        return key, stored

    def revoked_used(self, stored: Stored, client: str) -> None:
        self.alerts.fire(
            alerts.REVOKED_KEY_USED,
            stored.product,
            stored.env,
            client_ip=client,
            **stored.names(),
        )

    def refuse_from_browser(self, request: HTTPConnection, stored: Stored) -> None:
        """A server credential sent by a browser is in client code: refuse and alert."""
        if (
            request.headers.get("origin") is not None
            or request.headers.get(PUBLISHABLE_KEY_HEADER) is not None
        ):
            self.alerts.fire(
                alerts.KEY_IN_BROWSER,
                stored.product,
                stored.env,
                client_ip=client_address(request),
                origin=request.headers.get("origin", "-"),
                **stored.names(),
            )
            raise HubError(401, "auth.key_in_browser")

    async def refuse_plain_http(self, request: HTTPConnection, stored: Stored) -> None:
        """Production: a server credential sent over plain HTTP is revoked as compromised."""
        # The scheme is the client's: uvicorn takes X-Forwarded-Proto from trusted proxies only.
        if not self.settings.production or request.url.scheme != "http":
            return
        values: dict[str, object] = {stored.revoked_column: utcnow()}
        if "revoked_reason" in stored.table.c:
            values["revoked_reason"] = "compromised"
        await self.db.execute(
            stored.table.update().where(stored.table.c.id == stored.id).values(**values)
        )
        if stored.table is product_keys:
            await self.product_changed(stored.product.id)
        self.alerts.fire(
            alerts.COMPROMISED_KEY,
            stored.product,
            stored.env,
            client_ip=client_address(request),
            **stored.names(),
        )
        raise HubError(401, "auth.key_compromised")

    # -- public (browser) endpoints -------------------------------------------------------

    async def publishable(self, request: HTTPConnection, presented: str) -> tuple[Product, str]:
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

    async def refuse_key_as_user_token(self, request: HTTPConnection, presented: str) -> None:
        """A server key where a user's token belongs: alert when it came from a browser."""
        if keys.kind_of(presented) not in keys.SERVER_KINDS:
            return
        found = await self._lookup(request, presented)
        if found is not None:
            self.refuse_from_browser(request, found[1])
        raise unauthorized()
