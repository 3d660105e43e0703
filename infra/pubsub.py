"""The pub/sub transports under the broker: one process in memory, Redis, or Redis Cluster.

The hub used to borrow these from `broadcaster`, through private modules
(`broadcaster._backends`, `broadcaster._base`) that upstream has since renamed, and only for
its in-memory backend: broadcaster's Redis backend stops delivering for good once its
connection drops (encode/broadcaster#144), so the hub already ran its own. They now live
here, on public APIs only (`asyncio` and `redis.asyncio`), behind one small protocol.

`MemoryPubSub` (no `REDIS_URL`): one process, nothing to run; a message reaches this
process's subscribers of its channel. `RedisPubSub` (`redis://`) survives Redis restarts: it
reconnects with backoff, resubscribes every channel, counts the reconnect
(`BROKER_RECONNECTS`) and reports the time from which messages may have been missed, so the
cable can recover them from SQL (the source of truth).

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
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisClusterException

from infra.logs import redact_url
from infra.metrics import BROKER_RECONNECTS
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.broker")

INITIAL_BACKOFF = 0.05  # seconds before the first reconnect attempt; doubles up to 2 s
# Start-up waits this long for Redis to answer (logging that it waits after the first part).
START_WAIT_SECONDS = 5.0
FIRST_ANSWER_SECONDS = 0.5
MAX_BACKOFF = 2.0

CLUSTER_SCHEME = "redis+cluster"

# Called with the last moment a connection was known healthy: what came later may be lost.
OnReconnect = Callable[[float], None]


class Event(NamedTuple):
    """A message received on a subscribed channel."""

    channel: str
    message: str


class Transport(Protocol):
    """What the broker needs from a transport."""

    async def connect(self) -> None: ...
    async def disconnect(self) -> None: ...
    async def subscribe(self, channel: str) -> None: ...
    async def unsubscribe(self, channel: str) -> None: ...
    async def publish_many(self, messages: Iterable[tuple[str, str]]) -> None: ...
    async def next_published(self) -> Event: ...
    async def ping(self) -> bool: ...


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
    more times on a new one, at once."""
    return {"retry": Retry(NoBackoff(), count), "retry_on_error": [aioredis.ConnectionError]}


# Commands: a pooled connection the server closed fails the first command sent on it, so that
# command is sent once more on a new connection (otherwise the first publish or readiness
# probe after a restart fails).
COMMAND_RETRIES = 1
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


class MemoryPubSub:
    """In-process pub/sub: published messages are queued and handed to the listener when
    their channel is subscribed (checked on delivery, as broadcaster's memory backend did)."""

    def __init__(self) -> None:
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def publish_many(self, messages: Iterable[tuple[str, str]]) -> None:
        for channel, message in messages:
            self._queue.put_nowait(Event(channel, message))

    async def next_published(self) -> Event:
        while True:
            event = await self._queue.get()
            if event.channel in self._channels:
                return event

    async def ping(self) -> bool:
        return True


# Told (channels the server dropped, the moment since which they may have missed messages)
# when a shard connection fails or a shard unsubscribes channels by itself.
OnTrouble = Callable[[set[str], float], None]


class Subscriber:
    """One subscribing connection that survives restarts: reconnect, resubscribe, report the
    gap. Classic pub/sub, or sharded (`SSUBSCRIBE`, one command per hash slot: a shard refuses
    channels of several slots in one command).

    `client` is asked for the client to connect with at every attempt (the control
    subscriber of a cluster moves to another node when its node is gone). `on_reconnect` is
    called with the last time the old connection was known healthy.
    """

    def __init__(
        self,
        client: Callable[[], aioredis.Redis],
        queue: asyncio.Queue[Event],
        on_reconnect: OnReconnect | None,
        *,
        sharded: bool = False,
        on_trouble: OnTrouble | None = None,
        name: str = "redis pub/sub",
    ) -> None:
        self._client = client
        self._queue = queue
        self._on_reconnect = on_reconnect
        self._on_trouble = on_trouble
        self._sharded = sharded
        self._message_type = "smessage" if sharded else "message"
        self.name = name
        self.channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self.healthy_at = time.time()
        self._was_connected = False
        self._backoff = INITIAL_BACKOFF
        self.connected = asyncio.Event()
        self.client: aioredis.Redis | None = None  # the one connected (or trying)
        self.last_error: str | None = None  # why the last attempt failed, for the log

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            # A failure here is a dropped connection: the run loop resubscribes everything.
            with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                await (pubsub.ssubscribe if self._sharded else pubsub.subscribe)(channel)

    async def unsubscribe(self, channel: str) -> None:
        self.channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                await (pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe)(channel)

    async def _run(self) -> None:
        while True:
            self.client = self._client()
            pubsub = self.client.pubsub()
            try:
                await self._listen(pubsub)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception as exc:
                self.last_error = str(exc) or type(exc).__name__
                if not isinstance(exc, aioredis.RedisError | OSError):
                    # Not a lost connection: a bug here must not end the subscription.
                    logger.exception("%s failed; reconnecting", self.name)
                elif self.connected.is_set():
                    logger.warning("%s connection lost (%s); reconnecting", self.name, exc)
                self.connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                if self._on_trouble is not None:
                    self._on_trouble(set(), self.healthy_at)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    async def _subscribe_all(self, pubsub: PubSub, channels: set[str]) -> None:
        if not channels:
            return
        if not self._sharded:
            await pubsub.subscribe(*channels)
            return
        by_slot: defaultdict[int, list[str]] = defaultdict(list)
        for channel in channels:
            by_slot[key_slot(channel.encode())].append(channel)
        for group in by_slot.values():
            await pubsub.ssubscribe(*group)

    async def _unsubscribe_all(self, pubsub: PubSub, channels: set[str]) -> None:
        for channel in channels:
            await (pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe)(channel)

    async def _listen(self, pubsub: PubSub) -> None:
        subscribed = set(self.channels)
        if not subscribed and self.client is not None:
            # Nothing to subscribe to yet: a PING proves the server answers.
            await self.client.ping()
        await self._subscribe_all(pubsub, subscribed)
        self._pubsub = pubsub
        # Channels added or dropped while we were subscribing are applied now.
        await self._subscribe_all(pubsub, self.channels - subscribed)
        await self._unsubscribe_all(pubsub, subscribed - self.channels)
        self.connected.set()
        self._backoff = INITIAL_BACKOFF
        reconnected, self._was_connected = self._was_connected, True
        if reconnected:
            logger.warning("%s reconnected; %d channels restored", self.name, len(self.channels))
            BROKER_RECONNECTS.inc()
            if self._on_reconnect is not None:
                self._on_reconnect(self.healthy_at)
        while True:
            if pubsub.connection is None:
                # Nothing subscribed on this connection yet (a shard whose streams all left
                # before it reconnected): redis-py cannot read it; wait for a first channel.
                await asyncio.sleep(1.0)
                message = None
            else:
                message = await pubsub.get_message(timeout=1.0)
            self.healthy_at = time.time()
            if message is None:
                continue
            kind = message["type"]
            if kind == self._message_type:
                self._queue.put_nowait(Event(message["channel"].decode(), message["data"].decode()))
            elif kind == "sunsubscribe" and self._on_trouble is not None:
                # A shard drops the channels of a slot it no longer owns (resharding,
                # failover): if we still want the channel, it must move.
                channel = message["channel"].decode()
                if channel in self.channels:
                    self._on_trouble({channel}, self.healthy_at)


async def wait_at_start(subscriber: Subscriber, url: str) -> None:
    """Wait up to START_WAIT_SECONDS for `subscriber`'s first connection, so that a wrong URL
    shows at start-up, saying in the log that we wait and, if Redis never answers, that the
    hub starts without it. Its loop keeps trying regardless: not ready (/readyz) until then,
    as after any outage. (Failing the start instead would turn a Redis outage into restart
    loops of every hub process, whose API works on SQL meanwhile.)"""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscriber.connected.wait(), timeout=FIRST_ANSWER_SECONDS)
        return
    where = redact_url(url)
    logger.info(
        "waiting up to %g s for Redis at %s (%s)",
        START_WAIT_SECONDS,
        where,
        subscriber.last_error or "no answer yet",
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            subscriber.connected.wait(), timeout=START_WAIT_SECONDS - FIRST_ANSWER_SECONDS
        )
        logger.info("Redis at %s answers", where)
        return
    logger.warning(
        "Redis at %s does not answer (%s); starting without it: the hub keeps reconnecting,"
        " and /readyz answers 503 until it does",
        where,
        subscriber.last_error or "no answer",
    )


class RedisPubSub:
    """Redis pub/sub that survives Redis restarts: reconnect, resubscribe, report the gap.

    `on_reconnect` is called with the last time the old connection was known healthy.
    """

    def __init__(self, url: str, on_reconnect: OnReconnect | None = None) -> None:
        options: dict[str, Any] = {
            "health_check_interval": 5,
            "socket_connect_timeout": 3,
            "socket_keepalive": True,
        }
        self._url = url
        self._client = redis_client(url, **options)
        listening = redis_client(url, SUBSCRIBER_RETRIES, **options)
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscriber = Subscriber(lambda: listening, self._queue, on_reconnect)
        self.connected = self._subscriber.connected

    async def connect(self) -> None:
        self._subscriber.start()
        await wait_at_start(self._subscriber, self._url)

    async def disconnect(self) -> None:
        await self._subscriber.stop()
        if self._subscriber.client is not None:
            await self._subscriber.client.aclose()
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._subscriber.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._subscriber.unsubscribe(channel)

    async def publish_many(self, messages: Iterable[tuple[str, str]]) -> None:
        """One round trip for all of them (a pipeline without MULTI)."""
        pipe = self._client.pipeline(transaction=False)
        for channel, message in messages:
            pipe.publish(channel, message)
        await pipe.execute()

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def ping(self) -> bool:
        """Redis answers and the subscription connection is up."""
        return await _ping(self._client, self._subscriber)


async def _ping(client: aioredis.Redis, subscriber: Subscriber) -> bool:
    if not subscriber.connected.is_set():
        return False
    try:
        return bool(await client.ping())
    except (aioredis.RedisError, OSError):
        return False


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
        return await _ping(self._client(*self._control_node), self._control)

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
