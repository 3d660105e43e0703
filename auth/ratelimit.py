"""Rate limits for the auth endpoints, shared by every hub process when Redis is configured."""

from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from auth.credential_secrets import hash_secret
from infra.errors import HubError

logger = logging.getLogger("auth.ratelimit")


@lru_cache(maxsize=64)
def _rules(rule: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(rule))


class RateLimiter:
    def __init__(self, redis_url: str | None = None, key_prefix: str = "hub") -> None:
        storage: Storage
        if redis_url:
            storage = storage_from_string(
                f"async+{redis_url}", implementation="redispy", key_prefix=f"{key_prefix}:limits"
            )
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, rule: str, *key: str) -> None:
        """Count one attempt against every limit in `rule` for `key`; 429 when one is spent.

        If the limit store is unreachable the attempt is let through and logged: a Redis
        outage must not lock every user out of logging in.
        """
        for item in _rules(rule):
            try:
                allowed = await self._limiter.hit(item, *key)
                if allowed:
                    continue
                stats = await self._limiter.get_window_stats(item, *key)
            except Exception:
                logger.warning("rate limit store unavailable; %s not enforced", key[0])
                return
            retry_after = max(1, math.ceil(stats.reset_time - time.time()))
            raise HubError(429, "rate_limited", headers={"Retry-After": str(retry_after)})

    async def hit_account(self, rule: str, name: str, pool_id: int, env: str, email: str) -> None:
        """Count an attempt on an email address within an identity pool and environment
        (the same address elsewhere is another identity with its own budget); the address
        is hashed, so the limit store never holds it."""
        await self.hit(rule, name, str(pool_id), env, hash_secret(email))
