"""Extensions (Kiket's extension API keys): an organization installs one from a manifest (a
name, the scopes it asks for, an optional webhook URL) and the install issues an `ext_…` key
for that organization with exactly the manifest's scopes.

A key is stored as its SHA-256 digest and shown once, at install and at each rotation.
Rotating replaces the digest in the same UPDATE that finds the row, so the old key is unknown
the instant it commits, in every hub process (org credentials are looked up in SQL on each
request, never cached; see `auth/org_callers.py`). Uninstalling stops the key just as fast.
An installer never grants more than it holds (`scopes_beyond`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from databases import Database

from auth.credential_secrets import hash_secret, new_secret
from auth.org_credentials import MAX_PER_ORGANIZATION, WORKSPACE_SCOPES
from auth.tables import extensions, users
from infra.db import as_utc, json_column, utcnow

EXTENSION_KEY_PREFIX = "ext_"
KEY_PREFIX_SHOWN = len(EXTENSION_KEY_PREFIX) + 8  # `ext_7d5c9c1a`: enough to tell keys apart
MAX_EXTENSIONS_PER_ORGANIZATION = MAX_PER_ORGANIZATION
MANIFEST_NAME_MAX = 200


def held_scopes(scopes: frozenset[str] | None) -> frozenset[str]:
    """The organization scopes a credential holds: an owner's or admin's access token (None),
    an org token without scopes or one with `admin` hold every one."""
    if not scopes or "admin" in scopes:
        return frozenset(WORKSPACE_SCOPES)
    return scopes


def scopes_beyond(asked: list[str], held: frozenset[str]) -> list[str]:
    """The scopes a manifest asks for that the installer does not hold (sorted)."""
    return sorted(set(asked) - held)


def _iso(value: Any) -> str | None:
    when = as_utc(value)
    return when.isoformat().replace("+00:00", "Z") if when else None


def _answer(m: Any, installer: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": m["id"],
        "name": m["name"],
        "scopes": json_column(m["scopes"]),
        "webhook_url": m["webhook_url"],
        "key_prefix": m["key_prefix"],
        "last_used_at": _iso(m["last_used_at"]),
        "created_at": _iso(m["created_at"]),
        "rotated_at": _iso(m["rotated_at"]),
        "installed_by": installer,
    }


def _new_key() -> tuple[str, dict[str, str]]:
    """A fresh key and the columns that store it."""
    plaintext = new_secret(EXTENSION_KEY_PREFIX)
    return plaintext, {
        "key_hash": hash_secret(plaintext),
        "key_prefix": plaintext[:KEY_PREFIX_SHOWN],
    }


class Extensions:
    """An organization's installed extensions: install, list, rotate, uninstall, and the
    lookup of a presented key."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _installers(self, user_ids: set[int]) -> dict[int, dict[str, Any]]:
        if not user_ids:
            return {}
        rows = await self._db.fetch_all(
            sa.select(users.c.id, users.c.name).where(users.c.id.in_(sorted(user_ids)))
        )
        return {r[0]: {"id": r[0], "name": r[1]} for r in rows}

    async def _answered(self, row: Any, key: str | None = None) -> dict[str, Any]:
        m = row._mapping
        installer = (await self._installers({m["installed_by"]})).get(m["installed_by"])
        answer = _answer(m, installer)
        return {**answer, "key": key} if key is not None else answer

    async def count_installed(self, org_id: int) -> int:
        value = await self._db.fetch_val(
            sa.select(sa.func.count())
            .select_from(extensions)
            .where(extensions.c.organization_id == org_id, extensions.c.uninstalled_at.is_(None))
        )
        return int(value or 0)

    async def install(
        self,
        *,
        org_id: int,
        installed_by: int,
        name: str,
        scopes: list[str],
        webhook_url: str | None,
    ) -> dict[str, Any]:
        """The installed extension's answer; `key` (its plaintext) is in it and nowhere else."""
        plaintext, stored = _new_key()
        row = await self._db.fetch_one(
            extensions.insert()
            .values(
                organization_id=org_id,
                installed_by=installed_by,
                name=name,
                scopes=scopes,
                webhook_url=webhook_url,
                created_at=utcnow(),
                **stored,
            )
            .returning(*extensions.c)
        )
        assert row is not None
        return await self._answered(row, plaintext)

    async def installed(self, org_id: int) -> list[dict[str, Any]]:
        """The organization's installed extensions, newest first, without their keys."""
        rows = await self._db.fetch_all(
            extensions.select()
            .where(extensions.c.organization_id == org_id, extensions.c.uninstalled_at.is_(None))
            .order_by(extensions.c.id.desc())
        )
        installers = await self._installers({r._mapping["installed_by"] for r in rows})
        return [_answer(r._mapping, installers.get(r._mapping["installed_by"])) for r in rows]

    async def rotate(self, org_id: int, extension_id: int) -> dict[str, Any] | None:
        """A new key for an installed extension of the org (its answer holds the key), or None.
        One UPDATE swaps the digest: no moment exists in which both keys work."""
        plaintext, stored = _new_key()
        row = await self._db.fetch_one(
            extensions.update()
            .where(
                extensions.c.id == extension_id,
                extensions.c.organization_id == org_id,
                extensions.c.uninstalled_at.is_(None),
            )
            .values(rotated_at=utcnow(), **stored)
            .returning(*extensions.c)
        )
        return await self._answered(row, plaintext) if row is not None else None

    async def uninstall(self, org_id: int, extension_id: int) -> bool:
        """Uninstall an extension of the org (its key stops at once); False if there is none."""
        changed = await self._db.fetch_one(
            extensions.update()
            .where(
                extensions.c.id == extension_id,
                extensions.c.organization_id == org_id,
                extensions.c.uninstalled_at.is_(None),
            )
            .values(uninstalled_at=utcnow())
            .returning(extensions.c.id)
        )
        return changed is not None

    async def find(self, presented: str) -> Any | None:
        """The extension row (installed or not) whose key this is, looked up by its digest."""
        row = await self._db.fetch_one(
            extensions.select().where(extensions.c.key_hash == hash_secret(presented))
        )
        return row._mapping if row is not None else None
