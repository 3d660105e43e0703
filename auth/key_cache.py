"""Live product keys and their products, remembered in process: the publish path's lookups.

Every server request used to look its key up by digest and then its product, two SQL round
trips before any work. A live key found once is kept here (with its product) for at most
`KEY_CACHE_SECONDS`. A change to a product or any of its keys (revoked, rotated, the
product's settings) drops the product's entries at once in the process that made it, and in
every other process through the broker's control channel (`ProductChanged`, sent by
`Credentials.product_changed`); the time limit is the safety net for a change whose message
was lost (a Redis outage) or made where no broker runs (the CLI).

Unknown and revoked keys are never kept: each of their lookups still reaches SQL, so it is
counted and alerted as before.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from auth.keys import ProductKey
from auth.products import Product

KEY_CACHE_SECONDS = 10.0
# More live keys than this in one process is a key per request, not a hot key: start over.
MAX_CACHED_KEYS = 10_000


class CachedKey(NamedTuple):
    key: ProductKey
    product: Product
    expires_at: float


class KeyCache:
    """Live keys by digest. A lookup that began before a change must not store what it read
    before that change: `generation` (read before the lookup) says whether one happened."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[str, CachedKey] = {}
        self.generation = 0

    def get(self, digest: str) -> tuple[ProductKey, Product] | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            del self._entries[digest]
            return None
        return entry.key, entry.product

    def put(self, digest: str, key: ProductKey, product: Product, generation: int) -> None:
        """Keep a live key read while `generation` was current (ignored if it no longer is)."""
        if generation != self.generation or not key.active:
            return
        if len(self._entries) >= MAX_CACHED_KEYS:
            self._entries.clear()
        self._entries[digest] = CachedKey(key, product, time.monotonic() + self._ttl)

    def forget_product(self, product_id: int) -> None:
        """Drop every key of this product (and what lookups under way would store)."""
        self.generation += 1
        for digest in [d for d, e in self._entries.items() if e.key.product_id == product_id]:
            del self._entries[digest]
