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
from collections.abc import Callable
from typing import Generic, TypeVar

from auth.keys import ProductKey
from auth.products import Product

KEY_CACHE_SECONDS = 10.0
# More live keys than this in one process is a key per request, not a hot key: start over.
MAX_CACHED_KEYS = 10_000

V = TypeVar("V")


class _Expiring(Generic[V]):
    """Values that lapse `ttl` seconds after they were stored, at most `MAX_CACHED_KEYS`."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[V, float]] = {}

    def get(self, name: str) -> V | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        value, expires_at = entry
        if expires_at <= time.monotonic():
            del self._entries[name]
            return None
        return value

    def put(self, name: str, value: V) -> None:
        if len(self._entries) >= MAX_CACHED_KEYS:
            self._entries.clear()
        self._entries[name] = (value, time.monotonic() + self._ttl)

    def drop(self, which: Callable[[V], bool]) -> None:
        for name in [n for n, (value, _) in self._entries.items() if which(value)]:
            del self._entries[name]


class KeyCache:
    """Live keys by digest, products by slug. A lookup that began before a change must not
    store what it read before that change: `generation` (read before the lookup) says whether
    one happened."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._keys: _Expiring[tuple[ProductKey, Product]] = _Expiring(ttl)
        self._products: _Expiring[Product] = _Expiring(ttl)
        self.generation = 0

    def get(self, digest: str) -> tuple[ProductKey, Product] | None:
        return self._keys.get(digest)

    def put(self, digest: str, key: ProductKey, product: Product, generation: int) -> None:
        """Keep a live key read while `generation` was current (ignored if it no longer is)."""
        if generation == self.generation and key.active:
            self._keys.put(digest, (key, product))

    def product(self, slug: str) -> Product | None:
        return self._products.get(slug)

    def put_product(self, slug: str, product: Product, generation: int) -> None:
        """Keep a product read by `slug` while `generation` was current."""
        if generation == self.generation:
            self._products.put(slug, product)

    def forget_product(self, product_id: int) -> None:
        """Drop the product and every key of it (and what lookups under way would store)."""
        self.generation += 1
        self._keys.drop(lambda found: found[0].product_id == product_id)
        self._products.drop(lambda product: product.id == product_id)
