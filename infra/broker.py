"""The fan-out bus between hub processes: a pub/sub transport behind one small class.

`memory://` (no `REDIS_URL`) is the in-process transport: one process, nothing to run.
`redis://` is Redis pub/sub, which reconnects with backoff, resubscribes every channel, and
reports the window in which messages may have been missed, so the cable can recover them from
SQL (the source of truth); `redis+cluster://` is the same on Redis Cluster, with the streams on
sharded pub/sub. Both transports are in `infra/pubsub.py`; this class adds the
channel prefix, the recovery request after a failed publish and the gap margin.

Subscription bookkeeping (which stream needs a channel) is the cable registry's job; the broker
only keeps the set of channels to restore after a reconnect. Channel names are prefixed with
`HUB_REDIS_PREFIX` so several deployments can share one Redis.

The control channel carries hub-internal messages; what they say is the cable's protocol
(`hub.cable.protocol`), which this floor cannot import: the broker carries them unread, and
the one it sends itself (a publish gap) is encoded by the `gap_notice` it is built with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from infra.pubsub import MemoryPubSub, Transport
from infra.pubsub_cluster import redis_transport
from infra.redis_clients import redis_client as redis_client  # the cable's leases share it
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.broker")

OnMessage = Callable[[str, str], None]
# Called with the wall-clock time from which messages may have been missed.
OnGap = Callable[[float], Awaitable[None]]

# Messages published up to this long before an outage was noticed may have been lost with it.
GAP_MARGIN_SECONDS = 5.0

# A publish gap is announced by the first publish that succeeds this long after the last one
# that failed. While one shard of a cluster is down, publishes to it fail and those to the
# others succeed: announcing at every success made every process re-read every stream from
# SQL about once per failed publish (12 recoveries for 8 failures in a 10-second outage).
GAP_NOTICE_QUIET_SECONDS = 1.0

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


class Broker:
    """Publish to and listen on named channels, in this process or across processes."""

    def __init__(
        self, url: str | None = None, prefix: str = "hub", *, gap_notice: GapNotice | None = None
    ) -> None:
        self.url = url or "memory://"
        self._prefix = f"{prefix}:"
        self._backend: Transport
        if url:
            # On a cluster the control channel stays on classic pub/sub (every node hears it).
            control = [self._name(CONTROL_CHANNEL)]
            self._backend = redis_transport(url, self._reconnected, broadcast=control)
        else:
            self._backend = MemoryPubSub()
        self._gap_notice = gap_notice
        self._on_message: OnMessage | None = None
        self._on_gap: OnGap | None = None
        self._listener: asyncio.Task[None] | None = None
        self._publish_failed_since: float | None = None
        self._publish_failed_at = 0.0
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
        await cancel_and_wait(self._listener)
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

        A failed publish loses nothing that SQL holds: the first publish that succeeds once
        publishing has stopped failing (GAP_NOTICE_QUIET_SECONDS) first asks every process to
        recover the gap.
        """
        if not messages:
            return True
        named = [(self._name(channel), message) for channel, message in messages]
        started = time.time()
        try:
            quiet = time.time() - self._publish_failed_at >= GAP_NOTICE_QUIET_SECONDS
            if self._publish_failed_since is not None and quiet:
                since = self._publish_failed_since
                if self._gap_notice is not None:
                    await self._send([(self._name(CONTROL_CHANNEL), self._gap_notice(since))])
                self._publish_failed_since = None
            await self._send(named)
            return True
        except Exception as exc:
            self._publish_failed_at = time.time()
            # From when this publish began, not when it gave up: against a Redis that hangs,
            # a publish fails only after its timeout (COMMAND_TIMEOUT_SECONDS; before there
            # was one, 15 s and more), and what it carried was stored just before it began.
            # Concurrent failures: the earliest start counts.
            since = started - GAP_MARGIN_SECONDS
            if self._publish_failed_since is None or since < self._publish_failed_since:
                self._publish_failed_since = since
            logger.warning("publish failed (%s); subscribers will recover from SQL", exc)
            return False

    async def publish(self, channel: str, message: str) -> bool:
        return await self.publish_many([(channel, message)])

    async def _send(self, named: list[tuple[str, str]]) -> None:
        await self._backend.publish_many(named)

    async def ping(self) -> bool:
        return await self._backend.ping()

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
