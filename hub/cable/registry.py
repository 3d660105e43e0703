"""Streams ↔ connections: who in this process listens to which stream, and delivery to them.

Each stream has exactly one broker subscription in this process however many sockets share
it, and a broadcast is encoded once per (stream, identifier) — in practice once per stream —
then queued on every subscriber. Sessions, timers and control messages are the node's
(`hub.cable.node`); this module knows streams and the sockets on them, nothing else.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from typing import Protocol

from hub.cable.connection import CableConnection
from hub.cable.protocol import broadcast_frame, safe_payload

# Returns what a stream may have missed since a moment: (offset, payload) pairs, oldest first.
Recover = Callable[[datetime], Awaitable[list[tuple[int, str]]]]

# Offsets (SQL ids) remembered to deliver a recovered notification and its late original once:
# those delivered in the last RECENT_SECONDS (a recovery re-reads from shortly before the gap,
# so this covers outages of up to ~10 minutes), at most RECENT_OFFSETS per stream. Memory
# follows the recent delivery rate, not the number of streams times their history.
RECENT_SECONDS = 600.0
RECENT_OFFSETS = 1024


class StreamSubscriptions(Protocol):
    """The part of `infra.broker.Broker` the registry uses: one channel per stream."""

    async def subscribe(self, channel: str) -> None: ...

    async def unsubscribe(self, channel: str) -> None: ...


class _Stream:
    __slots__ = ("recent", "recover", "subscribers")

    def __init__(self, recover: Recover | None) -> None:
        self.subscribers: dict[str, set[CableConnection]] = {}
        # offset → when it was delivered (monotonic), oldest first; made on the first
        # delivery (most per-user streams sit idle) and dropped again once it empties.
        self.recent: OrderedDict[int, float] | None = None
        self.recover = recover

    def first_delivery(self, offset: int | None) -> bool:
        if offset is None:
            return True
        recent = self.recent
        if recent is None:
            recent = self.recent = OrderedDict()
        elif offset in recent:
            return False
        now = time.monotonic()
        recent[offset] = now
        self.forget_before(now - RECENT_SECONDS)
        if len(recent) > RECENT_OFFSETS:
            recent.popitem(last=False)
        return True

    def forget_before(self, moment: float) -> None:
        recent = self.recent
        if recent is None:
            return
        while recent and next(iter(recent.values())) < moment:
            recent.popitem(last=False)
        if not recent:
            self.recent = None

    def empty(self) -> bool:
        return not self.subscribers


class CableRegistry:
    def __init__(self, broker: StreamSubscriptions) -> None:
        self.broker = broker
        self._streams: dict[str, _Stream] = {}

    async def join(
        self,
        stream: str,
        connection: CableConnection,
        identifier: str,
        recover: Recover | None = None,
    ) -> None:
        state = self._streams.get(stream)
        new = state is None
        if state is None:
            # Registered before awaiting the broker, so a concurrent join of the same new
            # stream shares this state instead of subscribing twice.
            state = self._streams[stream] = _Stream(recover)
        state.subscribers.setdefault(identifier, set()).add(connection)
        if new:
            await self.broker.subscribe(stream)

    async def leave(self, stream: str, connection: CableConnection, identifier: str) -> None:
        state = self._streams.get(stream)
        if state is None:
            return
        members = state.subscribers.get(identifier)
        if members is not None:
            members.discard(connection)
            if not members:
                del state.subscribers[identifier]
        if state.empty():
            del self._streams[stream]
            await self.broker.unsubscribe(stream)

    def broadcast(
        self,
        stream: str,
        payload: str,
        offset: int | None = None,
        published_at: float | None = None,
    ) -> None:
        """Deliver to this process's subscribers of `stream` (encoded once per identifier);
        an offset already delivered recently is not delivered again."""
        state = self._streams.get(stream)
        if state is None or not state.first_delivery(offset):
            return
        payload = safe_payload(payload)
        for identifier, members in state.subscribers.items():
            frame = broadcast_frame(identifier, payload)
            for connection in members:
                connection.send(frame, published_at)

    def recoverable(self) -> Iterator[tuple[str, Recover]]:
        """(stream, recover) for every stream that can re-read what it missed."""
        for stream, state in list(self._streams.items()):
            if state.recover is not None:
                yield stream, state.recover

    def forget_old_offsets(self) -> None:
        """Streams that went quiet would otherwise keep their last offsets for good."""
        moment = time.monotonic() - RECENT_SECONDS
        for state in self._streams.values():
            state.forget_before(moment)

    def __len__(self) -> int:
        return len(self._streams)
