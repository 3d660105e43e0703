"""A product environment's organizations as its operators see them: each with its member
count and subscription, and the credentials it issued (workspace tokens, OAuth applications,
installed extensions; never a secret), revoked through the same functions the organization's
own managers use (`OrgCredentials.revoke`, `Extensions.uninstall`), so they stop at once.

An organization of another product or of the other environment is never found here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from auth.extensions import Extensions
from auth.org_credentials import OrgCredentials
from auth.products import Product
from auth.tables import (
    memberships,
    oauth_applications,
    organizations,
    plans,
    subscriptions,
    workspace_tokens,
)
from infra.db import as_utc

# What the console revokes: the table (or "extension") behind each kind of credential.
CREDENTIAL_TABLES = {"token": workspace_tokens, "application": oauth_applications}
CREDENTIAL_KINDS = (*CREDENTIAL_TABLES, "extension")


@dataclass(frozen=True)
class OrgSummary:
    id: int
    name: str
    members: int
    plan: str | None
    status: str | None
    created_at: datetime


@dataclass(frozen=True)
class OrgCredentialList:
    tokens: list[dict[str, Any]]
    applications: list[dict[str, Any]]
    extensions: list[dict[str, Any]]


class OrgAdmin:
    def __init__(self, db: Database, credentials: OrgCredentials, extensions: Extensions) -> None:
        self._db = db
        self._credentials = credentials
        self._extensions = extensions

    def _query(self, product: Product, env: str) -> sa.Select:
        members = (
            sa.select(sa.func.count())
            .where(memberships.c.organization_id == organizations.c.id)
            .scalar_subquery()
        )
        return (
            sa.select(
                organizations.c.id,
                organizations.c.name,
                members.label("members"),
                plans.c.name.label("plan"),
                subscriptions.c.status,
                organizations.c.created_at,
            )
            .select_from(
                organizations.outerjoin(subscriptions).outerjoin(
                    plans, plans.c.id == subscriptions.c.plan_id
                )
            )
            .where(organizations.c.product_id == product.id, organizations.c.env == env)
        )

    async def organizations(
        self, product: Product, env: str, *, after: int | None, limit: int
    ) -> list[OrgSummary]:
        """The product environment's organizations by id, after the id `after`."""
        query = self._query(product, env)
        if after is not None:
            query = query.where(organizations.c.id > after)
        rows = await self._db.fetch_all(query.order_by(organizations.c.id).limit(limit))
        return [_summary(r) for r in rows]

    async def organization(self, product: Product, env: str, org_id: int) -> OrgSummary | None:
        """The organization if it is one of this product environment's; None otherwise."""
        row = await self._db.fetch_one(
            self._query(product, env).where(organizations.c.id == org_id)
        )
        return _summary(row) if row is not None else None

    async def credentials(self, org_id: int) -> OrgCredentialList:
        """The organization's live credentials (as its managers' API answers them)."""
        return OrgCredentialList(
            tokens=await self._credentials.list_workspace_tokens(org_id),
            applications=await self._credentials.list_applications(org_id),
            extensions=await self._extensions.installed(org_id),
        )

    async def revoke(self, org_id: int, kind: str, credential_id: int) -> bool:
        """Revoke a workspace token or OAuth application, or uninstall an extension, of the
        organization (the caller checked it is one of the product environment's); False
        when it has none such (or it was revoked already)."""
        if kind == "extension":
            return await self._extensions.uninstall(org_id, credential_id)
        return await self._credentials.revoke(CREDENTIAL_TABLES[kind], org_id, credential_id)


def _summary(row: object) -> OrgSummary:
    m = row._mapping  # type: ignore[attr-defined]
    return OrgSummary(
        id=m["id"],
        name=m["name"],
        members=int(m["members"] or 0),
        plan=m["plan"],
        status=m["status"],
        created_at=as_utc(m["created_at"]),  # type: ignore[arg-type]
    )
