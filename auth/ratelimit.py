"""Rate limits for the auth endpoints, shared by every hub process when Redis is configured.

Narrow before wide: a request is counted against its narrow limits (per client address, per
account) first and spends a wide budget (a product's public budget) only once every narrow
one allowed it. A wide budget spent by requests their own limits already refused would let
one address lock a whole product out (`check` refuses early without spending).
"""

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
from infra.redis_clients import COMMAND_RETRIES, COMMAND_TIMEOUT_SECONDS, retry_options

logger = logging.getLogger("auth.ratelimit")


def _rate_limited(reset_time: float) -> HubError:
    retry_after = max(1, math.ceil(reset_time - time.time()))
    return HubError(429, "rate_limited", headers={"Retry-After": str(retry_after)})


@lru_cache(maxsize=64)
def _rules(rule: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(rule))


class RateLimiter:
    def __init__(self, redis_url: str | None = None, key_prefix: str = "hub") -> None:
        storage: Storage
        if redis_url:
            # `redis+cluster://` becomes limits' cluster storage: each limit is one key, so
            # it lives on one shard and its script needs no hash tag. The hub's retry policy,
            # not redis-py's default: a request whose limit lives on a shard that is down
            # waited ~1.1 s for the cluster client's retries (0.1 s with this), then passed.
            # limits names a Redis socket `redis+unix://` (redis-py's `unix://`).
            if redis_url.startswith("unix://"):
                redis_url = "redis+" + redis_url
            storage = storage_from_string(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=f"{key_prefix}:limits",
                socket_timeout=COMMAND_TIMEOUT_SECONDS,
                **retry_options(COMMAND_RETRIES),
            )
        else:
            storage = MemoryStorage()
        self._limiter = MovingWindowRateLimiter(storage)
        # While the shared store is unreachable each process counts on its own, as it does
        # without Redis: limits stay on (per process) and nobody is locked out.
        self._local = MovingWindowRateLimiter(MemoryStorage())

    async def check(self, rule: str, *key: str) -> None:
        """429 when a limit in `rule` for `key` is already spent, without spending any: the
        early refusal of a wide budget that is spent later, after the narrow limits."""
        await self._enforce(rule, key, spend=False)

    async def hit(self, rule: str, *key: str) -> None:
        """Count one attempt against every limit in `rule` for `key`; 429 when one is spent."""
        await self._enforce(rule, key, spend=True)

    async def _enforce(self, rule: str, key: tuple[str, ...], *, spend: bool) -> None:
        for item in _rules(rule):
            try:
                await _count(self._limiter, item, key, spend)
            except HubError:
                raise
            except Exception:
                logger.warning(
                    "rate limit store unavailable; %s counted in this process only", key[0]
                )
                await _count(self._local, item, key, spend)

    async def hit_account(self, rule: str, name: str, pool_id: int, env: str, email: str) -> None:
        """Count an attempt on an email address within an identity pool and environment
        (the same address elsewhere is another identity with its own budget); the address
        is hashed, so the limit store never holds it."""
        await self.hit(rule, name, str(pool_id), env, hash_secret(email))

    async def hit_public(self, rule: str, product_id: int, env: str) -> None:
        """Spend one request of a product environment's public budget (what browsers of
        every address share); call it after the request's narrow limits, never before."""
        await self.hit(rule, *public_key(product_id, env))


async def _count(
    limiter: MovingWindowRateLimiter, item: RateLimitItem, key: tuple[str, ...], spend: bool
) -> None:
    """Count (or, without `spend`, test) one attempt against `item`; 429 when it is spent."""
    allowed = await (limiter.hit if spend else limiter.test)(item, *key)
    if not allowed:
        stats = await limiter.get_window_stats(item, *key)
        raise _rate_limited(stats.reset_time)


def public_key(product_id: int, env: str) -> tuple[str, ...]:
    """The limit-store key of a product environment's public budget."""
    return ("public", str(product_id), env)
