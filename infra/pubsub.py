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

The Redis Cluster transport (`redis+cluster://`) is in `pubsub_cluster.py`; it reuses this
module's `Subscriber` once per shard. Redis clients are built from URLs in `redis_clients.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.crc import key_slot

from infra.logs import redact_url
from infra.metrics import BROKER_RECONNECTS
from infra.redis_clients import COMMAND_TIMEOUT_SECONDS, SUBSCRIBER_RETRIES, redis_client
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.broker")

INITIAL_BACKOFF = 0.05  # seconds before the first reconnect attempt; doubles up to 2 s
# Start-up waits this long for Redis to answer (logging that it waits after the first part).
START_WAIT_SECONDS = 5.0
FIRST_ANSWER_SECONDS = 0.5
MAX_BACKOFF = 2.0

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
        # When a channel was first added while no connection was up (None: none waits).
        self._waiting_since: float | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def subscribe(self, channel: str) -> None:
        self.channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None:
            # The run loop subscribes it once a connection is up. Whoever was told it is
            # subscribed may miss what is published until then: a gap from now. (Before
            # start() the channel is the control channel, and nothing listens yet.)
            if self._task is not None and self._waiting_since is None:
                self._waiting_since = time.time()
            return
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
        waiting_since, self._waiting_since = self._waiting_since, None
        if reconnected:
            logger.warning("%s reconnected; %d channels restored", self.name, len(self.channels))
            BROKER_RECONNECTS.inc()
            if self._on_reconnect is not None:
                self._on_reconnect(self.healthy_at)
        elif waiting_since is not None and self._on_reconnect is not None:
            # A first connection (a cluster shard this process had no stream on yet, or Redis
            # down since start) is a gap for the channels that waited for it.
            self._on_reconnect(waiting_since)
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
        self._client = redis_client(url, socket_timeout=COMMAND_TIMEOUT_SECONDS, **options)
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
        return await ping_subscriber(self._client, self._subscriber)


async def ping_subscriber(client: aioredis.Redis, subscriber: Subscriber) -> bool:
    """Redis answers on `client` and `subscriber` is connected."""
    if not subscriber.connected.is_set():
        return False
    try:
        return bool(await client.ping())
    except (aioredis.RedisError, OSError):
        return False
