"""Product API keys on the server API: `Authorization: Bearer sk_live_…`.

A key is resolved by the SHA-256 of what was presented, so the lookup is an index hit on a
digest and no plaintext is ever compared or stored. `last_used_at` is written at most once a
minute per key per process, to keep a hot key from turning every request into a write.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import sqlalchemy as sa
from databases import Database
from starlette.requests import Request

from auth.products import Product, get_product
from auth.secrets import hash_secret
from auth.tables import product_keys
from hub.db import utcnow
from hub.errors import unauthorized

SERVER_KINDS = ("secret",)
LAST_USED_INTERVAL = 60.0


@dataclass(frozen=True)
class KeyContext:
    """What a valid server key grants: one product environment."""

    product: Product
    env: str
    key_id: int
    kind: str


class KeyAuthenticator:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._last_used_written: dict[int, float] = {}

    async def authenticate(self, presented: str | None) -> KeyContext | None:
        """The context of a live server key, or None for anything else (including pk_ keys)."""
        if not presented or len(presented) > 200 or not presented.startswith(("sk_", "rk_")):
            return None
        row = await self._db.fetch_one(
            product_keys.select().where(
                product_keys.c.key_hash == hash_secret(presented),
                product_keys.c.revoked_at.is_(None),
            )
        )
        if row is None or row._mapping["kind"] not in SERVER_KINDS:
            return None
        m = row._mapping
        product = await get_product(self._db, m["product_id"])
        if product is None:
            return None
        await self._touch(m["id"])
        return KeyContext(product, m["env"], m["id"], m["kind"])

    async def _touch(self, key_id: int) -> None:
        now = time.monotonic()
        if now - self._last_used_written.get(key_id, float("-inf")) < LAST_USED_INTERVAL:
            return
        self._last_used_written[key_id] = now
        await self._db.execute(
            sa.update(product_keys).where(product_keys.c.id == key_id).values(last_used_at=utcnow())
        )


async def require_server_key(request: Request) -> KeyContext:
    """The server key of the request (`Authorization: Bearer sk_…`), or 401."""
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    keys: KeyAuthenticator = request.app.state.keys
    context = await keys.authenticate(presented.strip()) if scheme.lower() == "bearer" else None
    if context is None:
        raise unauthorized()
    request.state.product = context.product  # error messages fall back to its locale
    return context
