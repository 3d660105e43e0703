"""The audit log: one row for every console action, written where the action happens.

Who (account id and email, kept even after the account is gone), what (`action`, its
`target` and a JSON `detail` that never holds a secret), when, and from where (client
address and user agent). Read per product by the audit page and `GET /api/v1/audit_log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from databases import Database

from console.tables import console_audit
from infra.db import as_utc, json_column, utcnow

USER_AGENT_MAX = 500
TARGET_MAX = 500


@dataclass(frozen=True)
class Actor:
    """Who acts and from where (taken from the request by the pages)."""

    account_id: int | None
    email: str | None
    ip: str
    user_agent: str


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    account_id: int | None
    account_email: str | None
    product_id: int | None
    action: str
    target: str | None
    detail: dict[str, Any]
    ip: str | None
    user_agent: str | None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "actor": {"account_id": self.account_id, "email": self.account_email},
            "action": self.action,
            "target": self.target,
            "detail": self.detail,
            "ip": self.ip,
            "user_agent": self.user_agent,
        }


async def record(
    db: Database,
    actor: Actor,
    action: str,
    *,
    product_id: int | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    await db.execute(
        console_audit.insert().values(
            at=utcnow(),
            account_id=actor.account_id,
            account_email=actor.email,
            product_id=product_id,
            action=action,
            target=target[:TARGET_MAX] if target else target,
            detail=detail or {},
            ip=actor.ip[:64],
            user_agent=actor.user_agent[:USER_AGENT_MAX],
        )
    )


async def entries(
    db: Database, product_id: int | None, *, limit: int, before_id: int | None = None
) -> list[AuditEntry]:
    """The product's rows, newest first (every row of the deployment, sign-ins included, for
    `product_id` None); `before_id` pages on (ids below it)."""
    query = console_audit.select()
    if product_id is not None:
        query = query.where(console_audit.c.product_id == product_id)
    if before_id is not None:
        query = query.where(console_audit.c.id < before_id)
    rows = await db.fetch_all(query.order_by(console_audit.c.id.desc()).limit(limit))
    return [_entry(r) for r in rows]


def _entry(row: object) -> AuditEntry:
    m = dict(row._mapping)  # type: ignore[attr-defined]
    m["at"] = as_utc(m["at"])
    m["detail"] = json_column(m["detail"]) or {}
    return AuditEntry(**m)
