"""Redis clients built from the hub's URLs: `redis://`, `rediss://`, `unix://` for one Redis,
`redis+cluster://host:port[,host:port…]` for a Redis Cluster.

The broker's transports, the rate limiter and the cable's leases all connect through here, so a
URL means the same thing to each of them, and each chooses how often a failed command is sent
again (`retries`).
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

CLUSTER_SCHEME = "redis+cluster"


class ClusterAddress(NamedTuple):
    """A `redis+cluster://[user:password@]host:port[,host:port…]` URL, taken apart."""

    nodes: list[tuple[str, int]]
    username: str | None
    password: str | None


def is_cluster_url(url: str) -> bool:
    return url.startswith(f"{CLUSTER_SCHEME}://")


def parse_cluster_url(url: str) -> ClusterAddress:
    """The seed nodes and credentials of a cluster URL; ValueError saying what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != CLUSTER_SCHEME:
        raise ValueError(f"a cluster URL starts with {CLUSTER_SCHEME}://")
    if parts.path not in ("", "/", "/0") or parts.query or parts.fragment:
        raise ValueError("a cluster has only database 0 and takes no options in the URL")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    nodes = []
    for node in hosts.split(","):
        host, _, port = node.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{node!r} is not host:port")
        nodes.append((host.strip("[]"), int(port)))
    return ClusterAddress(nodes, unquote(username) or None, unquote(password) or None)


def retry_options(count: int) -> dict[str, Any]:
    """redis-py client options: a command that failed on a dropped connection is sent `count`
    more times on a new one, at once. Only then: redis-py would also send again a command that
    timed out, which against a Redis that hangs doubles the wait for nothing."""
    retry = Retry(NoBackoff(), count, supported_errors=(aioredis.ConnectionError,))
    return {"retry": retry, "retry_on_error": [aioredis.ConnectionError]}


# Commands: a pooled connection the server closed fails the first command sent on it, so that
# command is sent once more on a new connection (otherwise the first publish or readiness
# probe after a restart fails).
COMMAND_RETRIES = 1
# Commands (a publish, a ping) give up after this long without an answer: a Redis that hangs
# without closing its connections (a frozen process, a network dropping packets) held each
# publish, and the API request waiting on it, for 15 to 30 s. A subscribing connection has
# none: it waits for messages as long as it takes, and its health check finds a dead one.
COMMAND_TIMEOUT_SECONDS = 3.0
# Subscriptions: none. redis-py's pub/sub would reconnect and resubscribe by itself, silently,
# and what was published meanwhile would be lost without a gap being reported.
SUBSCRIBER_RETRIES = 0


TCP_ONLY_OPTIONS = ("socket_keepalive", "socket_keepalive_options", "socket_type")


def redis_client(
    url: str, retries: int = COMMAND_RETRIES, **options: Any
) -> aioredis.Redis | RedisCluster:
    """A plain client for `redis://`, a cluster client (keys routed by hash slot) for
    `redis+cluster://`; a failed command is sent `retries` more times on a new connection."""
    if not is_cluster_url(url):
        if url.startswith("unix:"):
            # A unix socket's connection takes no TCP options (TypeError on each connect).
            options = {k: v for k, v in options.items() if k not in TCP_ONLY_OPTIONS}
        return aioredis.Redis.from_url(url, **retry_options(retries), **options)
    address = parse_cluster_url(url)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        username=address.username,
        password=address.password,
        # A shard that is down must not stop the client from routing to the others.
        require_full_coverage=False,
        **retry_options(retries),
        **options,
    )
