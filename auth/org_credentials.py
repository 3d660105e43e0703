"""Organization credentials: workspace API tokens (`wksp_…`) and OAuth client-credentials
applications, issued by an organization's owners and admins for its automation.

Both are scoped to their organization: they reach the org's members only, and only with their
scopes (`WORKSPACE_SCOPES`; none at all means full org access, `admin` includes the rest).
Tokens and client secrets are stored as SHA-256 digests and shown once. An OAuth access token
is an ES256 JWT of type `oauth`, so it never passes for a user's access token; it names its
application, which is looked up on every use, so revoking the application stops its tokens at
once on every process (`auth/org_callers.py` resolves them on a request).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from databases import Database

from auth.credential_secrets import hash_secret, new_secret, secrets_equal
from auth.tables import (
    extensions,
    memberships,
    oauth_applications,
    organizations,
    users,
    workspace_tokens,
)
from auth.tokens import TokenSigner
from infra.db import as_utc, json_column, utcnow

WORKSPACE_SCOPES = ("notifications:read", "notifications:write", "members:read", "admin")
TOKEN_PREFIX = "wksp_"  # noqa: S105 (a prefix, not a secret)
OAUTH_TOKEN_TYPE = "oauth"  # noqa: S105 (a JWT type, not a secret)
OAUTH_TOKEN_TTL = 900  # seconds: short-lived, a client asks again with its secret
MAX_PER_ORGANIZATION = 100
# The latest expiry a workspace token may ask for: a decade covers any real rotation policy,
# and every instant before it fits every database's timestamp range (PostgreSQL refuses
# years past 9999, which an offset such as -14:00 reaches from 9999-12-31).
MAX_TOKEN_LIFETIME = timedelta(days=3653)
MAX_TOKEN_LIFETIME_YEARS = 10


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True)
class Organization:
    id: int
    product_id: int
    env: str


@dataclass(frozen=True)
class Application:
    id: int
    organization_id: int
    client_id: str
    scopes: tuple[str, ...]


def _token_answer(m: Any, owner: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "scopes": json_column(m["scopes"]),
        "token_prefix": m["token_prefix"],
        "last_used_at": _iso(as_utc(m["last_used_at"])),
        "expires_at": _iso(as_utc(m["expires_at"])),
        "created_at": _iso(as_utc(m["created_at"])),
        "owner": owner,
    }


def _application_answer(m: Any, owner: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "client_id": m["client_id"],
        "scopes": json_column(m["scopes"]),
        "last_used_at": _iso(as_utc(m["last_used_at"])),
        "created_at": _iso(as_utc(m["created_at"])),
        "owner": owner,
    }


def granted_scopes(application: Application, requested: str | None) -> list[str] | None:
    """The scopes to grant for a `scope` parameter; None if it asks for more than allowed."""
    allowed = set(application.scopes) or set(WORKSPACE_SCOPES)  # blank: full org access
    if "admin" in allowed:
        allowed = set(WORKSPACE_SCOPES)
    if requested is None or not requested.strip():
        return sorted(application.scopes) or ["admin"]
    asked = requested.split()
    if not set(asked) <= allowed:
        return None
    return sorted(set(asked))


async def revoke_owned_by(db: Database, user_id: int) -> None:
    """Revoke every workspace token, OAuth application and extension the user issued (their
    identity was handed to someone else, who must not inherit them). Takes the flow's database
    handle: it runs inside the flow's transaction."""
    for table in (workspace_tokens, oauth_applications):
        await db.execute(
            table.update()
            .where(table.c.owner_id == user_id, table.c.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    await db.execute(
        extensions.update()
        .where(extensions.c.installed_by == user_id, extensions.c.uninstalled_at.is_(None))
        .values(uninstalled_at=utcnow())
    )


class OrgCredentials:
    """What an organization's managers do with its credentials, and what they can read."""

    def __init__(self, db: Database, signer: TokenSigner) -> None:
        self._db = db
        self._signer = signer

    async def organization(self, org_id: int) -> Organization | None:
        row = await self._db.fetch_one(
            sa.select(organizations.c.id, organizations.c.product_id, organizations.c.env).where(
                organizations.c.id == org_id
            )
        )
        return Organization(row[0], row[1], row[2]) if row else None

    async def members(self, org_id: int) -> list[dict[str, Any]]:
        rows = await self._db.fetch_all(
            sa.select(users.c.id, users.c.name, users.c.email, memberships.c.role)
            .select_from(memberships.join(users))
            .where(memberships.c.organization_id == org_id)
            .order_by(users.c.id)
        )
        return [{"id": r[0], "name": r[1], "email": r[2], "role": r[3]} for r in rows]

    async def _owners(self, user_ids: set[int]) -> dict[int, dict[str, Any]]:
        if not user_ids:
            return {}
        rows = await self._db.fetch_all(
            sa.select(users.c.id, users.c.name).where(users.c.id.in_(sorted(user_ids)))
        )
        return {r[0]: {"id": r[0], "name": r[1]} for r in rows}

    async def count_active(self, table: sa.Table, org_id: int) -> int:
        value = await self._db.fetch_val(
            sa.select(sa.func.count())
            .select_from(table)
            .where(table.c.organization_id == org_id, table.c.revoked_at.is_(None))
        )
        return int(value or 0)

    async def revoke(self, table: sa.Table, org_id: int, row_id: int) -> bool:
        """Revoke a workspace token or OAuth application of the org; False if there is none."""
        changed = await self._db.fetch_one(
            table.update()
            .where(
                table.c.id == row_id,
                table.c.organization_id == org_id,
                table.c.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
            .returning(table.c.id)
        )
        return changed is not None

    # -- workspace API tokens ---------------------------------------------------------------

    async def issue_workspace_token(
        self,
        *,
        org_id: int,
        owner_id: int,
        name: str,
        scopes: list[str],
        expires_at: datetime | None,
    ) -> dict[str, Any]:
        """The new token's answer; `token` (its plaintext) is in it and nowhere else."""
        plaintext = new_secret(TOKEN_PREFIX)
        token_id = await self._db.execute(
            workspace_tokens.insert().values(
                organization_id=org_id,
                owner_id=owner_id,
                name=name,
                token_hash=hash_secret(plaintext),
                token_prefix=plaintext[: len(TOKEN_PREFIX) + 8],
                scopes=scopes,
                expires_at=expires_at,
                created_at=utcnow(),
            )
        )
        row = await self._db.fetch_one(
            workspace_tokens.select().where(workspace_tokens.c.id == token_id)
        )
        assert row is not None
        owner = (await self._owners({owner_id})).get(owner_id)
        return {**_token_answer(row._mapping, owner), "token": plaintext}

    async def list_workspace_tokens(self, org_id: int) -> list[dict[str, Any]]:
        """The organization's tokens that still work, newest first."""
        rows = await self._db.fetch_all(
            workspace_tokens.select()
            .where(
                workspace_tokens.c.organization_id == org_id,
                workspace_tokens.c.revoked_at.is_(None),
                sa.or_(
                    workspace_tokens.c.expires_at.is_(None),
                    workspace_tokens.c.expires_at > utcnow(),
                ),
            )
            .order_by(workspace_tokens.c.id.desc())
        )
        owners = await self._owners({r._mapping["owner_id"] for r in rows})
        return [_token_answer(r._mapping, owners.get(r._mapping["owner_id"])) for r in rows]

    # -- OAuth applications -----------------------------------------------------------------

    async def register_application(
        self, *, org_id: int, owner_id: int, name: str, scopes: list[str]
    ) -> dict[str, Any]:
        """The new application's answer; `client_secret` is in it and nowhere else."""
        client_id = "hub_" + secrets.token_hex(12)
        client_secret = new_secret("hubsec_")
        app_id = await self._db.execute(
            oauth_applications.insert().values(
                organization_id=org_id,
                owner_id=owner_id,
                name=name,
                client_id=client_id,
                secret_hash=hash_secret(client_secret),
                scopes=scopes,
                created_at=utcnow(),
            )
        )
        row = await self._db.fetch_one(
            oauth_applications.select().where(oauth_applications.c.id == app_id)
        )
        assert row is not None
        owner = (await self._owners({owner_id})).get(owner_id)
        return {**_application_answer(row._mapping, owner), "client_secret": client_secret}

    async def list_applications(self, org_id: int) -> list[dict[str, Any]]:
        rows = await self._db.fetch_all(
            oauth_applications.select()
            .where(
                oauth_applications.c.organization_id == org_id,
                oauth_applications.c.revoked_at.is_(None),
            )
            .order_by(oauth_applications.c.id.desc())
        )
        owners = await self._owners({r._mapping["owner_id"] for r in rows})
        return [_application_answer(r._mapping, owners.get(r._mapping["owner_id"])) for r in rows]

    async def authenticate_client(self, client_id: str, client_secret: str) -> Application | None:
        """The live application whose id and secret these are, or None (compared in constant
        time, and a digest is computed for unknown ids too, so timing tells nothing)."""
        row = await self._db.fetch_one(
            oauth_applications.select().where(
                oauth_applications.c.client_id == client_id[:64],
                oauth_applications.c.revoked_at.is_(None),
            )
        )
        presented = hash_secret(client_secret)
        stored = row._mapping["secret_hash"] if row else hash_secret(secrets.token_hex(16))
        if not secrets_equal(presented, stored) or row is None:
            return None
        m = row._mapping
        return Application(
            m["id"], m["organization_id"], m["client_id"], tuple(json_column(m["scopes"]))
        )

    def issue_access_token(
        self, application: Application, org: Organization, scopes: list[str]
    ) -> dict[str, Any]:
        token, _ = self._signer.issue(
            OAUTH_TOKEN_TYPE,
            {
                "sub": f"oauth:{application.client_id}",
                "app": application.id,
                "org": org.id,
                "env": org.env,
                "scopes": scopes,
            },
            OAUTH_TOKEN_TTL,
        )
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": OAUTH_TOKEN_TTL,
            "scope": " ".join(scopes),
        }
