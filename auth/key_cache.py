"""Live product keys and products, remembered in process: the hot paths' lookups.

Every server request used to look its key up by digest and then its product, two SQL round trips
before any work, and every access token (each cable connect among them) its product by slug. A live
key found once is kept here (with its product) for at most `KEY_CACHE_SECONDS`, and so is a product
found by the slug a token names. A change to a product or any of its keys (revoked, rotated, the
product's settings) drops the product's entries at once in the process that made it, and in every
other process through the broker's control channel (`ProductChanged`, sent by
`Credentials.product_changed`); the time limit is the safety net for a change whose message was lost
(a Redis outage) or made where no broker runs (the CLI).

Unknown and revoked keys are never kept: each of their lookups still reaches SQL, so it is counted
and alerted as before.
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


class CachedProduct(NamedTuple):
    product: Product
    expires_at: float


class KeyCache:
    """Live keys by digest. A lookup that began before a change must not store what it read
    before that change: `generation` (read before the lookup) says whether one happened."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._ttl = ttl
        self._entries: dict[str, CachedKey] = {}
        self._products: dict[str, CachedProduct] = {}
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

    def product(self, slug: str) -> Product | None:
        entry = self._products.get(slug)
        if entry is None:
            return None
        if entry.expires_at <= time.monotonic():
            del self._products[slug]
            return None
        return entry.product

    def put_product(self, slug: str, product: Product, generation: int) -> None:
        """Keep a product read by `slug` while `generation` was current."""
        if generation != self.generation:
            return
        if len(self._products) >= MAX_CACHED_KEYS:
            self._products.clear()
        self._products[slug] = CachedProduct(product, time.monotonic() + self._ttl)

    def forget_product(self, product_id: int) -> None:
        """Drop the product and every key of it (and what lookups under way would store)."""
        self.generation += 1
        for digest in [d for d, e in self._entries.items() if e.key.product_id == product_id]:
            del self._entries[digest]
        for slug in [s for s, e in self._products.items() if e.product.id == product_id]:
            del self._products[slug]
