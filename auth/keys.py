"""Product keys: publishable `pk_`, secret `sk_` and restricted `rk_`, per environment.

A key is `<prefix>_<env>_` + 32 random bytes as URL-safe base64 (43 characters). It is shown
once, stored only as its SHA-256 digest and found by that digest; the first characters are
kept (`key_prefix`) so people can tell keys apart in listings. One publishable and one secret
key are active per product environment; rotating issues the new key and revokes the old one in
the same transaction, with no grace window. Restricted keys carry scopes and may be many.

`last_used_at` is written at most once a minute per key per process, so a hot key does not
turn every request into a write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from databases import Database

from auth.credential_secrets import hash_secret, new_secret
from auth.tables import product_keys
from infra.db import as_utc, bound, json_column, utcnow

KEY_PREFIXES = {"publishable": "pk", "secret": "sk", "restricted": "rk"}
KIND_OF_PREFIX = {prefix: kind for kind, prefix in KEY_PREFIXES.items()}
SERVER_KINDS = ("secret", "restricted")
# What a restricted key may be granted; a secret key can do all of it.
PRODUCT_SCOPES = (
    "notifications:read",
    "notifications:write",
    "users:read",
    "users:write",
    "keys:write",
)
MAX_KEY_LENGTH = 100
LAST_USED_INTERVAL = 60.0


@dataclass(frozen=True)
class ProductKey:
    id: int
    product_id: int
    env: str
    kind: str
    prefix: str
    name: str | None
    scopes: tuple[str, ...] | None  # None: everything (publishable and secret keys)
    created_at: datetime
    revoked_at: datetime | None
    revoked_reason: str | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "env": self.env,
            "name": self.name,
            "key_prefix": self.prefix,
            "scopes": list(self.scopes) if self.scopes is not None else None,
            "created_at": _iso(self.created_at),
            "last_used_at": _iso(self.last_used_at),
            "revoked_at": _iso(self.revoked_at),
            "revoked_reason": self.revoked_reason,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _key(row: Any) -> ProductKey:
    m = row._mapping
    scopes = json_column(m["scopes"])
    return ProductKey(
        id=m["id"],
        product_id=m["product_id"],
        env=m["env"],
        kind=m["kind"],
        prefix=m["key_prefix"],
        name=m["name"],
        scopes=tuple(scopes) if scopes is not None else None,
        created_at=as_utc(m["created_at"]),  # type: ignore[arg-type]
        revoked_at=as_utc(m["revoked_at"]),
        revoked_reason=m["revoked_reason"],
        last_used_at=as_utc(m["last_used_at"]),
    )


def kind_of(presented: str) -> str | None:
    """`secret` for `sk_live_…`, … from the shape alone; None if it is no key of ours."""
    prefix, _, rest = presented.partition("_")
    env, _, body = rest.partition("_")
    if env not in ("live", "test") or not body or len(presented) > MAX_KEY_LENGTH:
        return None
    return KIND_OF_PREFIX.get(prefix)


async def issue_key(
    db: Database,
    product_id: int,
    env: str,
    kind: str,
    *,
    scopes: list[str] | None = None,
    name: str | None = None,
) -> tuple[ProductKey, str]:
    """Store a new key; (the key, its plaintext — which exists nowhere else)."""
    prefix = f"{KEY_PREFIXES[kind]}_{env}_"
    plaintext = new_secret(prefix)
    key_id = await db.execute(
        product_keys.insert().values(
            product_id=product_id,
            env=env,
            kind=kind,
            key_hash=hash_secret(plaintext),
            key_prefix=plaintext[: len(prefix) + 6],
            scopes=scopes if kind == "restricted" else None,
            name=name,
            created_at=utcnow(),
        )
    )
    key = await get_key(db, product_id, env, key_id)
    assert key is not None
    return key, plaintext


_BY_HASH = product_keys.select().where(
    product_keys.c.key_hash == sa.bindparam("key_hash", type_=sa.String)
)


async def find_key(db: Database, presented: str) -> ProductKey | None:
    """The key with this plaintext, revoked or not (the caller tells the two apart)."""
    return await find_key_by_hash(db, hash_secret(presented))


async def find_key_by_hash(db: Database, key_hash: str) -> ProductKey | None:
    """The key whose plaintext has this digest (`hash_secret`), revoked or not."""
    row = await db.fetch_one(bound(_BY_HASH, key_hash=key_hash))
    return _key(row) if row else None


async def get_key(db: Database, product_id: int, env: str, key_id: int) -> ProductKey | None:
    row = await db.fetch_one(
        product_keys.select().where(
            product_keys.c.id == key_id,
            product_keys.c.product_id == product_id,
            product_keys.c.env == env,
        )
    )
    return _key(row) if row else None


async def list_keys(db: Database, product_id: int, env: str) -> list[ProductKey]:
    rows = await db.fetch_all(
        product_keys.select()
        .where(product_keys.c.product_id == product_id, product_keys.c.env == env)
        .order_by(product_keys.c.id)
    )
    return [_key(row) for row in rows]


async def revoke_key(db: Database, key_id: int, reason: str) -> bool:
    """Revoke at once; False if it was revoked already."""
    changed = await db.fetch_one(
        product_keys.update()
        .where(product_keys.c.id == key_id, product_keys.c.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .returning(product_keys.c.id)
    )
    return changed is not None


async def rotate_key(db: Database, key: ProductKey) -> tuple[ProductKey, str]:
    """A new key of the same kind, name and scopes; the old one stops working now."""
    async with db.transaction():
        if not await revoke_key(db, key.id, "rotated"):
            raise LookupError("the key is revoked already")
        return await issue_key(
            db,
            key.product_id,
            key.env,
            key.kind,
            scopes=list(key.scopes) if key.scopes is not None else None,
            name=key.name,
        )


async def active_key(db: Database, product_id: int, env: str, kind: str) -> ProductKey | None:
    """The one active publishable or secret key of a product environment."""
    row = await db.fetch_one(
        product_keys.select()
        .where(
            product_keys.c.product_id == product_id,
            product_keys.c.env == env,
            product_keys.c.kind == kind,
            product_keys.c.revoked_at.is_(None),
        )
        .order_by(product_keys.c.id.desc())
        .limit(1)
    )
    return _key(row) if row else None


class LastUsed:
    """Writes `last_used_at` for a credential at most once a minute per process."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._written: dict[tuple[str, int], float] = {}

    async def touch(self, table: sa.Table, row_id: int) -> None:
        now = time.monotonic()
        marker = (table.name, row_id)
        if now - self._written.get(marker, float("-inf")) < LAST_USED_INTERVAL:
            return
        self._written[marker] = now
        await self._db.execute(
            sa.update(table).where(table.c.id == row_id).values(last_used_at=utcnow())
        )
