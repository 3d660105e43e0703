"""The process's one registry: connections, sessions, and stream → subscribers.

Each stream has exactly one broker subscription in this process however many sockets share
it, and a broadcast is encoded once per (stream, identifier) — in practice once per stream —
then queued on every subscriber. The registry also drives the process-wide timers (pings),
acts on control messages (session revoked, recover a gap) and recovers streams from SQL after
the broker reports a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from hub.cable.connection import CableConnection
from hub.cable.leases import SocketLeases
from hub.cable.protocol import encode, safe_payload
from infra.broker import CONTROL_CHANNEL, Broker, parse_stream_message

logger = logging.getLogger("hub.cable")

# Returns what a stream may have missed since a moment: (offset, payload) pairs, oldest first.
Recover = Callable[[datetime], Awaitable[list[tuple[int, str]]]]
# Of these session ids, the ones that are revoked.
RevokedAmong = Callable[[set[str]], Awaitable[set[str]]]

# Offsets (SQL ids) remembered to deliver a recovered notification and its late original once:
# those delivered in the last RECENT_SECONDS (a recovery re-reads from shortly before the gap,
# so this covers outages of up to ~10 minutes), at most RECENT_OFFSETS per stream. Memory
# follows the recent delivery rate, not the number of streams times their history.
RECENT_SECONDS = 600.0
RECENT_OFFSETS = 1024
RECOVERY_CONCURRENCY = 16
# Pings go out in slices, one every PING_TICK seconds, spread over the interval: every socket
# still hears one each interval, but thousands of sockets never wake at once. (A ping costs
# ~80 µs of loop time; 5,000 at once would stall every delivery for 0.4 s.)
PING_TICK = 0.05


def message_frame(identifier: str, payload: str) -> str:
    """`{"identifier": …, "message": …}` with the payload as a JSON string (the seed's shape)."""
    return f'{{"identifier":{json.dumps(identifier)},"message":{json.dumps(payload)}}}'


def _discard(index: dict, key: object, connection: CableConnection) -> None:
    """Take the connection out of index[key], and the key out of the index once it is empty."""
    peers = index.get(key)
    if peers is not None:
        peers.discard(connection)
        if not peers:
            del index[key]


class _Stream:
    __slots__ = ("recent", "recover", "subscribers")

    def __init__(self, recover: Recover | None) -> None:
        self.subscribers: dict[str, set[CableConnection]] = {}
        # offset → when it was delivered (monotonic), oldest first
        self.recent: OrderedDict[int, float] = OrderedDict()
        self.recover = recover

    def first_delivery(self, offset: int | None) -> bool:
        if offset is None:
            return True
        if offset in self.recent:
            return False
        now = time.monotonic()
        self.recent[offset] = now
        self.forget_before(now - RECENT_SECONDS)
        if len(self.recent) > RECENT_OFFSETS:
            self.recent.popitem(last=False)
        return True

    def forget_before(self, moment: float) -> None:
        while self.recent and next(iter(self.recent.values())) < moment:
            self.recent.popitem(last=False)

    def empty(self) -> bool:
        return not self.subscribers


class CableRegistry:
    def __init__(
        self,
        broker: Broker,
        *,
        revoked_among: RevokedAmong,
        ping_interval: float = 3.0,
        session_check_interval: float = 30.0,
        leases: SocketLeases | None = None,
    ) -> None:
        self.broker = broker
        # Sockets per user across processes (Redis); without it, per process only.
        self.leases = leases
        self._revoked_among = revoked_among
        self._ping_interval = ping_interval
        self._session_check_interval = session_check_interval
        self.connections: set[CableConnection] = set()
        slices = max(1, round(ping_interval / PING_TICK))
        self._ping_slices: list[set[CableConnection]] = [set() for _ in range(slices)]
        self._next_slice = 0
        self._by_session: dict[str, set[CableConnection]] = {}
        self._by_user: dict[tuple[int, str, int], set[CableConnection]] = {}
        self._streams: dict[str, _Stream] = {}
        self._expiry: dict[CableConnection, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.broker.start(self._on_broker_message, self.recover_gap)
        self._tasks = [
            asyncio.create_task(
                self._every(self._ping_interval / len(self._ping_slices), self._ping),
                name="cable-ping",
            ),
            asyncio.create_task(
                self._every(self._session_check_interval, self._check_sessions),
                name="cable-sessions",
            ),
            asyncio.create_task(
                self._every(self._session_check_interval, self._forget_old_offsets),
                name="cable-offsets",
            ),
        ]
        if self.leases is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._every(self.leases.renew_every, self._renew_leases), name="cable-leases"
                )
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.broker.stop()
        if self.leases is not None:
            await self.leases.close()

    async def disconnect_all(self, reason: str, *, reconnect: bool) -> None:
        """Tell every socket `reason` and wait (briefly) until the frames have gone out."""
        for connection in list(self.connections):
            connection.disconnect(reason, reconnect=reconnect)
        waits = [c.closed.wait() for c in list(self.connections)]
        if waits:
            await asyncio.wait([asyncio.ensure_future(w) for w in waits], timeout=3)

    # -- connections ----------------------------------------------------------------------

    async def add(self, connection: CableConnection, max_per_user: int | None = None) -> bool:
        """Register the connection; False (and nothing registered) when its user already has
        `max_per_user` sockets, in this process or (with leases) in all of them."""
        # No await between this count and the add: simultaneous connects to this process
        # cannot both take the last place (the lease script does the same across processes).
        peers = self._by_user.setdefault(connection.user_key, set())
        if max_per_user is not None and len(peers) >= max_per_user:
            return False
        peers.add(connection)
        if max_per_user is not None and self.leases is not None:
            admitted = False
            try:
                admitted = await self.leases.admit(
                    connection.user_key, id(connection), max_per_user
                )
            finally:
                if not admitted:  # refused, or cancelled while asking
                    _discard(self._by_user, connection.user_key, connection)
            if not admitted:
                return False
        self.connections.add(connection)
        # The smallest slice, so slices stay even as sockets come and go.
        min(self._ping_slices, key=len).add(connection)
        self._by_session.setdefault(connection.session_id, set()).add(connection)
        delay = max(0.0, connection.expires_at - time.time())
        self._expiry[connection] = asyncio.get_running_loop().call_later(
            delay, lambda: connection.disconnect("token_expired", reconnect=True)
        )
        return True

    async def remove(self, connection: CableConnection) -> None:
        """Forget the connection (its subscriptions leave their streams separately). The
        local state goes first, with no await before it: a handler cancelled while the lease
        is released must not leave the connection counted here."""
        leases = self.leases if connection in self.connections else None
        self.connections.discard(connection)
        for ping_slice in self._ping_slices:
            ping_slice.discard(connection)
        _discard(self._by_session, connection.session_id, connection)
        _discard(self._by_user, connection.user_key, connection)
        timer = self._expiry.pop(connection, None)
        if timer is not None:
            timer.cancel()
        if leases is not None:
            await leases.release(connection.user_key, id(connection))

    # -- streams --------------------------------------------------------------------------

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
        """Deliver to this process's subscribers of `stream` (encoded once per identifier)."""
        state = self._streams.get(stream)
        if state is None or not state.first_delivery(offset):
            return
        payload = safe_payload(payload)
        for identifier, members in state.subscribers.items():
            frame = message_frame(identifier, payload)
            for connection in members:
                connection.send(frame, published_at)

    # -- broker ---------------------------------------------------------------------------

    def _on_broker_message(self, channel: str, raw: str) -> None:
        if channel == CONTROL_CHANNEL:
            self._on_control(raw)
            return
        try:
            offset, published_at, payload = parse_stream_message(raw)
        except ValueError:
            logger.warning("dropped a malformed message on %s", channel)
            return
        self.broadcast(channel, payload, offset, published_at)

    def _on_control(self, raw: str) -> None:
        try:
            message = json.loads(raw)
            kind = message["type"]
        except (ValueError, KeyError, TypeError):
            logger.warning("dropped a malformed control message")
            return
        if kind == "sessions_revoked":
            self.revoke_sessions(set(message.get("sids", ())))
        elif kind == "recover":
            asyncio.get_running_loop().create_task(self.recover_gap(float(message["since"])))

    def revoke_sessions(self, session_ids: set[str]) -> None:
        for sid in session_ids:
            for connection in list(self._by_session.get(sid, ())):
                connection.disconnect("unauthorized", reconnect=False)

    async def recover_gap(self, since: float) -> None:
        """Re-deliver from SQL what every stream may have missed since `since`."""
        moment = datetime.fromtimestamp(since, UTC)
        limit = asyncio.Semaphore(RECOVERY_CONCURRENCY)

        async def recover(stream: str, state: _Stream) -> None:
            if state.recover is None:
                return
            async with limit:
                try:
                    missed = await state.recover(moment)
                except Exception:
                    logger.exception("recovering %s failed", stream)
                    return
            for offset, payload in missed:
                self.broadcast(stream, payload, offset)

        streams = list(self._streams.items())
        await asyncio.gather(*(recover(stream, state) for stream, state in streams))
        logger.info("recovered %d streams from SQL after a broker gap", len(streams))

    # -- timers ---------------------------------------------------------------------------

    async def _every(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except Exception:
                logger.exception("periodic cable task failed")

    async def _ping(self) -> None:
        frame = encode({"type": "ping", "message": int(time.time())})
        for connection in self._ping_slices[self._next_slice]:
            connection.send(frame)
        self._next_slice = (self._next_slice + 1) % len(self._ping_slices)

    async def _renew_leases(self) -> None:
        assert self.leases is not None
        await self.leases.renew([(c.user_key, id(c)) for c in self.connections])

    async def _forget_old_offsets(self) -> None:
        # Streams that went quiet would otherwise keep their last offsets for good.
        moment = time.monotonic() - RECENT_SECONDS
        for state in self._streams.values():
            state.forget_before(moment)

    async def _check_sessions(self) -> None:
        # A backstop for revocations whose control message was lost (e.g. a Redis outage).
        if self._by_session:
            self.revoke_sessions(await self._revoked_among(set(self._by_session)))
