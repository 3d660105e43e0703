"""Sockets per user across every hub process: leases in Redis.

Each open socket holds a lease (`HUB_CABLE_SOCKET_LEASE_SECONDS`, 30 s): a member of its
user's sorted set `<prefix>:cable:sockets:<product>:<env>:<user>`, scored with the moment it
expires (Redis's own clock, so the machines' clocks do not matter). A hub process renews the
leases of its sockets every third of the lease time and drops a socket's lease when it closes.
A process that crashes renews nothing: its leases lapse within one lease time and stop
counting.

Admitting a socket is one script (drop lapsed leases, count, add), so two processes cannot
both take a user's last place. If Redis is unreachable the socket is admitted and logged:
an outage must not lock every user out of their notifications (the per-process limit still
holds).

On Redis Cluster (`redis+cluster://`) the same works unchanged: every command and script
touches one key, the user's set, so it runs on the shard that owns that key and needs no hash
tag. The scripts go as EVAL (the script's text), not EVALSHA: a restarted shard has forgotten
every loaded script, and a cluster pipeline does not reload them as a plain one does.
"""

from __future__ import annotations

import logging
import uuid

from redis import asyncio as aioredis

from infra.broker import redis_client

logger = logging.getLogger("hub.cable")

_ADMIT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms + tonumber(ARGV[3]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# XX: only a lease that still exists is renewed (a closed socket's lease is never revived).
_RENEW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

UserKey = tuple[int, str, int]


class SocketLeases:
    def __init__(self, url: str, prefix: str, lease_seconds: float) -> None:
        self._client = redis_client(url, socket_connect_timeout=2, socket_timeout=2)
        self._prefix = f"{prefix}:cable:sockets:"
        self._process = uuid.uuid4().hex[:12]
        self._lease_ms = int(lease_seconds * 1000)
        self.renew_every = lease_seconds / 3

    def _key(self, user: UserKey) -> str:
        product_id, env, user_id = user
        return f"{self._prefix}{product_id}:{env}:{user_id}"

    def _member(self, socket_id: int) -> str:
        return f"{self._process}:{socket_id}"

    async def admit(self, user: UserKey, socket_id: int, limit: int) -> bool:
        """Take a lease for the socket; False when the user already holds `limit` of them."""
        try:
            taken = await self._client.eval(
                _ADMIT, 1, self._key(user), limit, self._member(socket_id), self._lease_ms
            )
        except (aioredis.RedisError, OSError) as exc:
            logger.warning("socket leases unavailable (%s); admitting without a count", exc)
            return True
        return bool(taken)

    async def release(self, user: UserKey, socket_id: int) -> None:
        try:
            await self._client.zrem(self._key(user), self._member(socket_id))
        except (aioredis.RedisError, OSError) as exc:
            logger.warning("could not release a socket lease (%s); it lapses by itself", exc)

    async def renew(self, sockets: list[tuple[UserKey, int]]) -> None:
        """Extend the leases of this process's open sockets (one pipeline)."""
        if not sockets:
            return
        pipe = self._client.pipeline(transaction=False)
        for user, socket_id in sockets:
            pipe.eval(_RENEW, 1, self._key(user), self._member(socket_id), self._lease_ms)
        try:
            await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            logger.warning("renewing socket leases failed (%s)", exc)

    async def close(self) -> None:
        await self._client.aclose()
