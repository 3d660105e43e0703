"""The Redis Cluster transport under the broker, and the choice between it and one Redis.

`ShardedRedisPubSub` (`redis+cluster://`) is the way past one Redis. Classic pub/sub on a
cluster copies every message to every node over the cluster bus, so it cannot scale; stream
channels instead go on sharded pub/sub (Redis ≥ 7 `SSUBSCRIBE`/`SPUBLISH`): a channel lives on
the shard that owns its hash slot, and this process holds one subscribing connection per
shard, each reconnecting, resubscribing and reporting its gap on its own, so an outage of one
shard leaves the streams of the others untouched. The broadcast channels (the control
channel: rare, and every process must hear it) stay on classic pub/sub on whichever node
answers, so losing any one node loses neither. When the cluster's slot map changes (a
failover, a resharding, a MOVED answer, a shard unsubscribing us from a slot it gave away),
the map is read again and the channels that moved are resubscribed on their new shard, with
their gap reported like a reconnect.

redis-py (8.x) ships its own cluster pub/sub (`ClusterPubSub`), but it polls its shards one
after another with a per-shard timeout (a message on the last shard waits for the others'
timeouts) and reconnects inside the library, where a gap cannot be seen; hence the
per-shard connections here, on plain `redis.asyncio` clients.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from redis import asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException

from infra.pubsub import (
    INITIAL_BACKOFF,
    MAX_BACKOFF,
    Event,
    OnReconnect,
    RedisPubSub,
    Subscriber,
    ping_subscriber,
    wait_at_start,
)
from infra.redis_clients import (
    COMMAND_RETRIES,
    COMMAND_TIMEOUT_SECONDS,
    SUBSCRIBER_RETRIES,
    is_cluster_url,
    parse_cluster_url,
    redis_client,
    retry_options,
)
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.broker")


class ShardedRedisPubSub:
    """Redis Cluster: streams on sharded pub/sub, one connection per shard; the broadcast
    channels (`broadcast`, the control channel) on classic pub/sub on any node that answers.

    A shard's outage is that shard's alone: its subscriber reconnects and reports its gap
    (`on_reconnect`), publishing to the other shards goes on, and a publish that reaches
    only some shards still raises, so that the broker asks for a recovery of the rest.
    """

    def __init__(
        self, url: str, on_reconnect: OnReconnect | None = None, broadcast: Iterable[str] = ()
    ) -> None:
        self._url = url
        self._address = parse_cluster_url(url)
        # The slot map (which node owns which channel); commands go on per-node clients.
        self._cluster = redis_client(url, socket_connect_timeout=3)
        self._on_reconnect = on_reconnect
        self._broadcast = frozenset(broadcast)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._clients: dict[tuple[str, int, int], aioredis.Redis] = {}
        self._shards: dict[str, Subscriber] = {}
        self._unplaced: set[str] = set()  # stream channels waiting for the slot map
        self._lost: set[str] = set()  # channels a shard dropped by itself
        self._lost_since: float | None = None
        self._next_node = 0
        self._control_node = self._address.nodes[0]  # where the control subscriber is
        self._control = Subscriber(self._any_node, self._queue, on_reconnect, name="redis control")
        self.connected = self._control.connected
        self._lock = asyncio.Lock()  # subscribe, unsubscribe and moving channels, one at a time
        self._reread_map = asyncio.Event()
        self._router: asyncio.Task[None] | None = None
        self._started = False

    # -- the transport ---------------------------------------------------------------------

    async def connect(self) -> None:
        self._started = True
        self._control.start()
        for shard in self._shards.values():
            shard.start()
        self._reread_map.set()
        self._router = asyncio.create_task(self._route(), name="redis-cluster-router")
        await wait_at_start(self._control, self._url)

    async def disconnect(self) -> None:
        await cancel_and_wait(self._router)
        for subscriber in [self._control, *self._shards.values()]:
            await subscriber.stop()
        for client in self._clients.values():
            await client.aclose()
        await self._cluster.aclose()

    async def subscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._broadcast:
                await self._control.subscribe(channel)
                return
            node = self._owner(channel)
            if node is None:
                self._unplaced.add(channel)
                self._reread_map.set()
                return
            await self._shard(node).subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            if channel in self._broadcast:
                await self._control.unsubscribe(channel)
                return
            self._unplaced.discard(channel)
            for shard in self._shards.values():
                if channel in shard.channels:
                    await shard.unsubscribe(channel)

    async def publish_many(self, messages: Iterable[tuple[str, str]]) -> None:
        """One pipeline per shard, all shards at once; raises if any shard failed (what
        reached the other shards stays delivered)."""
        by_node: dict[str, tuple[ClusterNode, list[tuple[str, str]]]] = {}
        broadcast: list[tuple[str, str]] = []
        for channel, message in messages:
            if channel in self._broadcast:
                broadcast.append((channel, message))
                continue
            node = self._owner(channel)
            if node is None:
                self._reread_map.set()
                raise RedisClusterException(f"no shard known for {channel}")
            by_node.setdefault(node.name, (node, []))[1].append((channel, message))
        sends = [self._spublish(node, batch) for node, batch in by_node.values()]
        if broadcast:
            sends.append(self._publish_anywhere(broadcast))
        failures = [
            result
            for result in await asyncio.gather(*sends, return_exceptions=True)
            if isinstance(result, BaseException)
        ]
        if failures:
            self._reread_map.set()  # a MOVED answer, or a node gone: the map may have changed
            raise failures[0]

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def ping(self) -> bool:
        """The cluster answers (the control connection is up). An outage of one shard is not
        a reason to take the process out of service: the other shards' streams still work."""
        return await ping_subscriber(self._client(*self._control_node), self._control)

    # -- nodes and shards ------------------------------------------------------------------

    def _client(self, host: str, port: int, retries: int = COMMAND_RETRIES) -> aioredis.Redis:
        client = self._clients.get((host, port, retries))
        if client is None:
            client = self._clients[host, port, retries] = aioredis.Redis(
                host=host,
                port=port,
                username=self._address.username,
                password=self._address.password,
                health_check_interval=5,
                socket_connect_timeout=3,
                socket_timeout=None if retries == SUBSCRIBER_RETRIES else COMMAND_TIMEOUT_SECONDS,
                socket_keepalive=True,
                **retry_options(retries),
            )
        return client

    def _nodes(self) -> list[tuple[str, int]]:
        known = [(node.host, node.port) for node in self._cluster.get_nodes()]
        return known or self._address.nodes

    def _any_node(self) -> aioredis.Redis:
        """The next node in turn (classic pub/sub reaches every node through the bus)."""
        nodes = self._nodes()
        self._next_node = (self._next_node + 1) % len(nodes)
        self._control_node = nodes[self._next_node]
        return self._client(*self._control_node, SUBSCRIBER_RETRIES)

    def _owner(self, channel: str) -> ClusterNode | None:
        try:
            return self._cluster.get_node_from_key(channel)
        except RedisClusterException:  # no slot map yet, or the slot is not covered
            return None

    def _shard(self, node: ClusterNode) -> Subscriber:
        shard = self._shards.get(node.name)
        if shard is None:
            client = self._client(node.host, node.port, SUBSCRIBER_RETRIES)
            shard = self._shards[node.name] = Subscriber(
                lambda: client,
                self._queue,
                self._on_reconnect,
                sharded=True,
                on_trouble=self._trouble,
                name=f"redis shard {node.name}",
            )
            if self._started:
                shard.start()
        return shard

    async def _spublish(self, node: ClusterNode, batch: list[tuple[str, str]]) -> None:
        pipe = self._client(node.host, node.port).pipeline(transaction=False)
        for channel, message in batch:
            pipe.spublish(channel, message)
        await pipe.execute()

    async def _publish_anywhere(self, batch: list[tuple[str, str]]) -> None:
        """Classic publish on the first node that takes it: the control subscriber's own node
        first (known alive), then the others."""
        nodes = self._nodes()
        if self._control.connected.is_set():
            nodes = [self._control_node, *nodes]
        clients = [self._client(host, port) for host, port in nodes]
        failure: BaseException | None = None
        for client in clients:
            pipe = client.pipeline(transaction=False)
            for channel, message in batch:
                pipe.publish(channel, message)
            try:
                await pipe.execute()
                return
            except (aioredis.RedisError, OSError) as exc:
                failure = exc
        assert failure is not None
        raise failure

    # -- moving channels when the slot map changes ----------------------------------------

    def _trouble(self, lost: set[str], since: float) -> None:
        self._lost |= lost
        if lost:
            self._lost_since = min(since, self._lost_since or since)
        self._reread_map.set()

    async def _route(self) -> None:
        """Re-read the slot map whenever something suggests it changed, and move channels."""
        backoff = INITIAL_BACKOFF
        while True:
            await self._reread_map.wait()
            self._reread_map.clear()
            try:
                await self._cluster.nodes_manager.initialize()
                await self._place_channels()
            except Exception as exc:  # no node answers yet, or a bug: try again, never stop
                logger.warning("redis cluster slot map unavailable (%s)", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
                self._reread_map.set()
                continue
            backoff = INITIAL_BACKOFF

    async def _place_channels(self) -> None:
        gap_since: float | None = None
        async with self._lock:
            lost = set(self._lost)  # forgotten only once they are placed (below)
            if lost and self._lost_since is not None:
                gap_since = self._lost_since
            for name, shard in list(self._shards.items()):
                for channel in list(shard.channels):
                    node = self._owner(channel)
                    if node is None:  # its slot is not covered: kept for the next map
                        lost.discard(channel)
                        continue
                    if node.name == name and channel not in lost:
                        continue
                    # The old shard has dropped it (or is gone): nothing to tell it.
                    shard.channels.discard(channel)
                    await self._shard(node).subscribe(channel)
                    gap_since = min(shard.healthy_at, gap_since or shard.healthy_at)
                    logger.warning("redis channel %s moved to shard %s", channel, node.name)
            for channel in list(self._unplaced):
                node = self._owner(channel)
                if node is not None:
                    self._unplaced.discard(channel)
                    await self._shard(node).subscribe(channel)
            self._lost -= lost
            if not self._lost:
                self._lost_since = None
            for name, shard in list(self._shards.items()):
                if not shard.channels and name not in self._primaries():
                    await shard.stop()
                    del self._shards[name]
        if gap_since is not None and self._on_reconnect is not None:
            self._on_reconnect(gap_since)

    def _primaries(self) -> set[str]:
        return {node.name for node in self._cluster.get_primaries()}


def redis_transport(
    url: str, on_reconnect: OnReconnect | None = None, broadcast: Iterable[str] = ()
) -> RedisPubSub | ShardedRedisPubSub:
    """The Redis transport a URL asks for: `redis+cluster://` is a cluster (sharded pub/sub,
    `broadcast` channels on classic pub/sub), anything else one Redis."""
    if is_cluster_url(url):
        return ShardedRedisPubSub(url, on_reconnect, broadcast)
    return RedisPubSub(url, on_reconnect)
