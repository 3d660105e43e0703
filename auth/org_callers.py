"""Resolving an organization credential on a request: a workspace token, an OAuth access
token or an extension key becomes the `ServerCaller` it speaks for, or None.

Apart from `org_credentials.py` (issuing, listing, revoking) because this is the hot path of
every org-scoped server call, and the only part that needs the product-key refusals of
`Credentials` (from a browser, over plain HTTP): workspace tokens, OAuth access tokens,
extension keys and the OAuth client secret at `/oauth/token` get the same ones. None of them
is cached: each request reads SQL, so a revocation or a rotation holds at once everywhere.
"""

from __future__ import annotations

import sqlalchemy as sa
from databases import Database
from starlette.requests import HTTPConnection

from auth import accounts
from auth.credential_secrets import hash_secret
from auth.credentials import Credentials, ServerCaller, Stored, client_address
from auth.extensions import EXTENSION_KEY_PREFIX, Extensions
from auth.org_credentials import (
    OAUTH_TOKEN_TYPE,
    TOKEN_PREFIX,
    Application,
    Organization,
    OrgCredentials,
)
from auth.products import Product, get_product
from auth.tables import extensions, oauth_applications, workspace_tokens
from auth.tokens import InvalidToken, TokenSigner
from infra.db import as_utc, json_column, utcnow
from infra.ids import MAX_ROW_ID, parse_id

MANAGER_ROLES = ("owner", "admin")


def _not_an_id() -> ValueError:
    return ValueError("not an id")  # a claim that names no row: not a token of ours


class OrgCallers:
    def __init__(
        self,
        *,
        db: Database,
        credentials: Credentials,
        org_credentials: OrgCredentials,
        extensions: Extensions,
        signer: TokenSigner,
    ) -> None:
        self._db = db
        self._credentials = credentials
        self._org_credentials = org_credentials
        self._extensions = extensions
        self._signer = signer

    async def resolve(self, connection: HTTPConnection, presented: str) -> ServerCaller | None:
        if presented.startswith(TOKEN_PREFIX):
            return await self._workspace_token(connection, presented)
        if presented.startswith(EXTENSION_KEY_PREFIX):
            return await self._extension_key(connection, presented)
        if presented.count(".") == 2:
            return await self._oauth_token(connection, presented)
        return None

    async def refuse_exposed_client(
        self, connection: HTTPConnection, application: Application
    ) -> None:
        """An OAuth client secret is a server credential: sent from a browser it is refused
        and alerted; in production, over plain HTTP, the application is revoked as
        compromised (as a workspace token would be; its access tokens stop with it)."""
        found = await self._organization(application.organization_id)
        if found is None:
            return
        org, product = found
        stored = Stored(oauth_applications, application.id, application.client_id, org.env, product)
        await self._refuse_exposed(connection, stored)

    async def _refuse_exposed(self, connection: HTTPConnection, stored: Stored) -> None:
        self._credentials.refuse_from_browser(connection, stored)
        await self._credentials.refuse_plain_http(connection, stored)

    async def manages(self, user_id: int, org_id: int, product_id: int, env: str) -> bool:
        """Whether the user is an owner or admin of the organization."""
        membership = await accounts.user_organization(self._db, user_id, org_id, product_id, env)
        return membership is not None and membership.role in MANAGER_ROLES

    async def _workspace_token(
        self, connection: HTTPConnection, presented: str
    ) -> ServerCaller | None:
        if len(presented) > 100:
            return None
        row = await self._db.fetch_one(
            workspace_tokens.select().where(workspace_tokens.c.token_hash == hash_secret(presented))
        )
        if row is None:
            self._credentials.alerts.failed_lookup(client_address(connection))
            return None
        m = row._mapping
        found = await self._organization(m["organization_id"])
        if found is None:
            return None
        org, product = found
        stored = Stored(workspace_tokens, m["id"], m["token_prefix"], org.env, product)
        if m["revoked_at"] is not None:
            self._credentials.revoked_used(stored, client_address(connection))
            return None
        expires_at = as_utc(m["expires_at"])
        if expires_at is not None and expires_at <= utcnow():
            return None
        await self._refuse_exposed(connection, stored)
        await self._credentials.last_used.touch(workspace_tokens, m["id"])
        scopes = frozenset(json_column(m["scopes"]) or ())
        return ServerCaller(product, org.env, "workspace", m["id"], scopes, org.id, m["owner_id"])

    async def _extension_key(
        self, connection: HTTPConnection, presented: str
    ) -> ServerCaller | None:
        """An installed extension's key: its manifest's scopes in its organization. A rotated
        key's digest is gone (an unknown key); an uninstalled one is alerted as revoked."""
        m = await self._extensions.find(presented) if len(presented) <= 100 else None
        if m is None:
            self._credentials.alerts.failed_lookup(client_address(connection))
            return None
        found = await self._organization(m["organization_id"])
        scopes = frozenset(json_column(m["scopes"]) or ())
        if found is None or not scopes:  # none would read as full access: never issued
            return None
        org, product = found
        stored = Stored(extensions, m["id"], m["key_prefix"], org.env, product, "uninstalled_at")
        if m["uninstalled_at"] is not None:
            self._credentials.revoked_used(stored, client_address(connection))
            return None
        await self._refuse_exposed(connection, stored)
        await self._credentials.last_used.touch(extensions, m["id"])
        return ServerCaller(
            product, org.env, "extension", m["id"], scopes, org.id, m["installed_by"]
        )

    async def _oauth_token(self, connection: HTTPConnection, presented: str) -> ServerCaller | None:
        try:
            claims = self._signer.verify(presented, OAUTH_TOKEN_TYPE)
            app_id = parse_id(claims["app"], maximum=MAX_ROW_ID, error=_not_an_id)
            org_id = parse_id(claims["org"], maximum=MAX_ROW_ID, error=_not_an_id)
            scopes = frozenset(str(s) for s in claims["scopes"])
            if not scopes:  # we never grant none; a token without any is not ours to honour
                return None
        except (InvalidToken, KeyError, TypeError, ValueError):
            return None
        live = await self._db.fetch_one(
            sa.select(oauth_applications.c.owner_id, oauth_applications.c.client_id).where(
                oauth_applications.c.id == app_id,
                oauth_applications.c.organization_id == org_id,
                oauth_applications.c.revoked_at.is_(None),
            )
        )
        found = await self._organization(org_id) if live is not None else None
        if live is None or found is None:
            return None
        org, product = found
        # The bearer of an access token gets the key rules too (the application is revoked).
        stored = Stored(oauth_applications, app_id, live[1], org.env, product)
        await self._refuse_exposed(connection, stored)
        await self._credentials.last_used.touch(oauth_applications, app_id)
        return ServerCaller(product, org.env, "oauth", app_id, scopes, org.id, live[0])

    async def _organization(self, org_id: int) -> tuple[Organization, Product] | None:
        org = await self._org_credentials.organization(org_id)
        product = await get_product(self._db, org.product_id) if org else None
        return (org, product) if org is not None and product is not None else None
