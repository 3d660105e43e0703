"""The two pub/sub transports under the broker: one process in memory, or Redis pub/sub.

The hub used to borrow these from `broadcaster`, through private modules
(`broadcaster._backends`, `broadcaster._base`) that upstream has since renamed, and only for
its in-memory backend: broadcaster's Redis backend stops delivering for good once its
connection drops (encode/broadcaster#144), so the hub already ran its own. Both now live
here, on public APIs only (`asyncio` and `redis.asyncio`), behind one small protocol.

`MemoryPubSub` (no `REDIS_URL`): one process, nothing to run; a message reaches this
process's subscribers of its channel. `RedisPubSub` survives Redis restarts: it reconnects
with backoff, resubscribes every channel, counts the reconnect (`BROKER_RECONNECTS`) and
reports the time from which messages may have been missed, so the cable can recover them
from SQL (the source of truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

from redis import asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from infra.metrics import BROKER_RECONNECTS

logger = logging.getLogger("hub.broker")

INITIAL_BACKOFF = 0.05  # seconds before the first reconnect attempt; doubles up to 2 s
MAX_BACKOFF = 2.0


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


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A Redis client whose commands survive a Redis restart: a pooled connection the server
    closed fails the first command sent on it, so that command is sent once more on a new
    connection (otherwise the first publish or readiness probe after a restart fails)."""
    return aioredis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 1), retry_on_error=[aioredis.ConnectionError], **options
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


class RedisPubSub:
    """Redis pub/sub that survives Redis restarts: reconnect, resubscribe, report the gap.

    `on_reconnect` is called with the last time the old connection was known healthy.
    """

    def __init__(self, url: str, on_reconnect: Callable[[float], None] | None = None) -> None:
        self._client = redis_client(
            url, health_check_interval=5, socket_connect_timeout=3, socket_keepalive=True
        )
        self._on_reconnect = on_reconnect
        self._channels: set[str] = set()
        self._pubsub: PubSub | None = None
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._healthy_at = time.time()
        self._was_connected = False
        self._backoff = INITIAL_BACKOFF
        self.connected = asyncio.Event()

    async def connect(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis-pubsub")
        # Wait briefly so a wrong URL shows at start-up; the loop keeps trying regardless.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), timeout=5)

    async def disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._client.aclose()

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            # A failure here is a dropped connection: the run loop resubscribes everything.
            with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                await pubsub.subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None:
            with contextlib.suppress(aioredis.ConnectionError, aioredis.TimeoutError, OSError):
                await pubsub.unsubscribe(channel)

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
        try:
            return bool(await self._client.ping()) and self.connected.is_set()
        except (aioredis.RedisError, OSError):
            return False

    async def _run(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await self._listen(pubsub)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (aioredis.RedisError, OSError) as exc:
                if self.connected.is_set():
                    logger.warning("redis pub/sub connection lost (%s); reconnecting", exc)
                self.connected.clear()
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    async def _listen(self, pubsub: PubSub) -> None:
        subscribed = set(self._channels)
        await pubsub.subscribe(*subscribed)
        self._pubsub = pubsub
        # Channels added or dropped while we were subscribing are applied now.
        if self._channels - subscribed:
            await pubsub.subscribe(*(self._channels - subscribed))
        if subscribed - self._channels:
            await pubsub.unsubscribe(*(subscribed - self._channels))
        self.connected.set()
        self._backoff = INITIAL_BACKOFF
        reconnected, self._was_connected = self._was_connected, True
        if reconnected:
            logger.warning("redis pub/sub reconnected; %d channels restored", len(self._channels))
            BROKER_RECONNECTS.inc()
            if self._on_reconnect is not None:
                self._on_reconnect(self._healthy_at)
        while True:
            message = await pubsub.get_message(timeout=1.0)
            self._healthy_at = time.time()
            if message is not None and message["type"] == "message":
                self._queue.put_nowait(Event(message["channel"].decode(), message["data"].decode()))
