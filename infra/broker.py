"""The fan-out bus between hub processes: a broadcaster backend behind one small class.

`memory://` (no `REDIS_URL`) is broadcaster's in-process backend: one process, nothing to run.
`redis://` is our own backend on Redis pub/sub, because broadcaster's as shipped stops
delivering for good once its connection drops (encode/broadcaster#144). Ours reconnects with
backoff, resubscribes every channel, and reports the window in which messages may have been
missed, so the cable can recover them from SQL (the source of truth).

Subscription bookkeeping (which stream needs a channel) is the cable registry's job; the broker
only keeps the set of channels to restore after a reconnect. Channel names are prefixed with
`HUB_REDIS_PREFIX` so several deployments can share one Redis.

The control channel carries hub-internal messages; what they say is the cable's protocol
(`hub.cable.protocol`), which this floor cannot import: the broker carries them unread, and
the one it sends itself (a publish gap) is encoded by the `gap_notice` it is built with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from broadcaster._backends.base import BroadcastBackend
from broadcaster._backends.memory import MemoryBackend
from broadcaster._base import Event
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from infra.metrics import BROKER_RECONNECTS

logger = logging.getLogger("hub.broker")

OnMessage = Callable[[str, str], None]
# Called with the wall-clock time from which messages may have been missed.
OnGap = Callable[[float], Awaitable[None]]

# Messages published up to this long before an outage was noticed may have been lost with it.
GAP_MARGIN_SECONDS = 5.0

INITIAL_BACKOFF = 0.05  # seconds before the first reconnect attempt; doubles up to 2 s

# Hub-internal messages every process listens to (session revocations, recovery requests).
CONTROL_CHANNEL = "control"

# The control message asking every process to recover what was published since a moment.
GapNotice = Callable[[float], str]


def stream_message(payload: str, offset: int | None = None) -> str:
    """A message for a stream: the payload, tagged with its SQL id when it has one (so that
    a notification recovered from SQL and the same one arriving late are delivered once) and
    with its publish time (for the publish-to-send metric)."""
    return f"{'-' if offset is None else offset} {time.time():.6f} {payload}"


def parse_stream_message(raw: str) -> tuple[int | None, float, str]:
    """(offset, published at, payload); ValueError if `raw` is not a stream message."""
    tag, _, rest = raw.partition(" ")
    published, _, payload = rest.partition(" ")
    return (None if tag == "-" else int(tag)), float(published), payload


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A Redis client whose commands survive a Redis restart: a pooled connection the server
    closed fails the first command sent on it, so that command is sent once more on a new
    connection (otherwise the first publish or readiness probe after a restart fails)."""
    return aioredis.Redis.from_url(
        url, retry=Retry(NoBackoff(), 1), retry_on_error=[aioredis.ConnectionError], **options
    )


class RedisPubSubBackend(BroadcastBackend):
    """Redis pub/sub that survives Redis restarts: reconnect, resubscribe, report the gap."""

    def __init__(self, url: str, on_reconnect: Callable[[float], None] | None = None) -> None:
        self._client = redis_client(
            url, health_check_interval=5, socket_connect_timeout=3, socket_keepalive=True
        )
        self._on_reconnect = on_reconnect
        self._channels: set[str] = set()
        self._pubsub: aioredis.client.PubSub | None = None
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

    async def publish(self, channel: str, message: str) -> None:
        await self._client.publish(channel, message)

    async def publish_many(self, messages: Iterable[tuple[str, str]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for channel, message in messages:
            pipe.publish(channel, message)
        await pipe.execute()

    async def next_published(self) -> Event:
        return await self._queue.get()

    async def ping(self) -> bool:
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
                self._backoff = min(self._backoff * 2, 2.0)

    async def _listen(self, pubsub: aioredis.client.PubSub) -> None:
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


class Broker:
    """Publish to and listen on named channels, in this process or across processes."""

    def __init__(
        self, url: str | None = None, prefix: str = "hub", *, gap_notice: GapNotice | None = None
    ) -> None:
        self.url = url or "memory://"
        self._prefix = f"{prefix}:"
        self._backend: BroadcastBackend
        if url:
            self._backend = RedisPubSubBackend(url, on_reconnect=self._reconnected)
        else:
            self._backend = MemoryBackend(self.url)
        self._gap_notice = gap_notice
        self._on_message: OnMessage | None = None
        self._on_gap: OnGap | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publish_failed_since: float | None = None
        self._lock = asyncio.Lock()

    def _name(self, channel: str) -> str:
        return self._prefix + channel

    def listen(self, on_message: OnMessage, on_gap: OnGap) -> None:
        """Hand every message (control and streams) to `on_message`, and every window in
        which messages may have been missed to `on_gap`. One listener: the cable node."""
        self._on_message = on_message
        self._on_gap = on_gap

    async def start(self) -> None:
        # Subscribed before connecting, so the first connection never has zero channels.
        await self._backend.subscribe(self._name(CONTROL_CHANNEL))
        await self._backend.connect()
        self._listener = asyncio.create_task(self._listen(), name="broker-listener")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        await self._backend.disconnect()

    async def subscribe(self, channel: str) -> None:
        # Serialized so that a quick unsubscribe + subscribe of one channel lands in order.
        async with self._lock:
            await self._backend.subscribe(self._name(channel))

    async def unsubscribe(self, channel: str) -> None:
        async with self._lock:
            await self._backend.unsubscribe(self._name(channel))

    async def publish_many(self, messages: list[tuple[str, str]]) -> bool:
        """Publish (channel, message) pairs; False (logged) if the bus is unreachable.

        A failed publish loses nothing that SQL holds: the next successful publish first asks
        every process to recover the gap.
        """
        if not messages:
            return True
        named = [(self._name(channel), message) for channel, message in messages]
        try:
            if self._publish_failed_since is not None:
                since = self._publish_failed_since
                if self._gap_notice is not None:
                    await self._send([(self._name(CONTROL_CHANNEL), self._gap_notice(since))])
                self._publish_failed_since = None
            await self._send(named)
            return True
        except Exception as exc:
            if self._publish_failed_since is None:
                self._publish_failed_since = time.time() - GAP_MARGIN_SECONDS
            logger.warning("publish failed (%s); subscribers will recover from SQL", exc)
            return False

    async def publish(self, channel: str, message: str) -> bool:
        return await self.publish_many([(channel, message)])

    async def _send(self, named: list[tuple[str, str]]) -> None:
        if isinstance(self._backend, RedisPubSubBackend):
            await self._backend.publish_many(named)
        else:
            for channel, message in named:
                await self._backend.publish(channel, message)

    async def ping(self) -> bool:
        if isinstance(self._backend, RedisPubSubBackend):
            return await self._backend.ping()
        return True

    def _reconnected(self, healthy_at: float) -> None:
        if self._on_gap is not None:
            asyncio.get_running_loop().create_task(self._on_gap(healthy_at - GAP_MARGIN_SECONDS))

    async def _listen(self) -> None:
        while True:
            event = await self._backend.next_published()
            if self._on_message is None or not event.channel.startswith(self._prefix):
                continue
            try:
                self._on_message(event.channel[len(self._prefix) :], event.message)
            except Exception:
                logger.exception("handling a broker message failed")
