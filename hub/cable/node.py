"""The process's cable node: its open sockets, what the other hub processes tell it, and time.

The node admits and forgets connections (sockets per user, in this process and — with leases —
across processes; the token's expiry), acts on control messages from the broker (a session
was revoked: its sockets end; a publish was lost: recover), recovers every stream from SQL
after a broker gap, and runs the timers: pings, the revoked-session sweep, the recent-offsets
sweep and the lease renewal. Streams and their sockets are the registry's; the broker's
lifecycle is the app's (the node only listens on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from hub.cable.connection import CableConnection
from hub.cable.leases import SocketLeases
from hub.cable.protocol import (
    DisconnectReason,
    FrameError,
    PingFrames,
    ProductChanged,
    RecoverGap,
    SessionsRevoked,
    decode_control,
    encode_control,
)
from hub.cable.registry import CableRegistry, Recover
from infra.broker import CONTROL_CHANNEL, Broker, parse_stream_message
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.cable")

# Of these session ids, the ones that are revoked.
RevokedAmong = Callable[[set[str]], Awaitable[set[str]]]

RECOVERY_CONCURRENCY = 16
# The sockets are dealt into slices, and the timers that touch every socket (pings, lease
# renewal) take one slice per tick, spread over their interval: every socket still hears a
# ping each interval and has its lease renewed in time, but thousands never wake at once. (A
# ping costs ~80 µs of loop time, 5,000 at once would stall every delivery for 0.4 s; one
# pipeline renewing 5,000 leases delayed every delivery behind it by 70–200 ms.)
PING_TICK = 0.05


def _discard(index: dict, key: object, connection: CableConnection) -> None:
    """Take the connection out of index[key], and the key out of the index once it is empty."""
    peers = index.get(key)
    if peers is not None:
        peers.discard(connection)
        if not peers:
            del index[key]


class CableNode:
    def __init__(
        self,
        broker: Broker,
        registry: CableRegistry,
        *,
        revoked_among: RevokedAmong,
        ping_interval: float = 3.0,
        session_check_interval: float = 10.0,
        leases: SocketLeases | None = None,
        on_product_changed: Callable[[int], None] | None = None,
    ) -> None:
        self.broker = broker
        # Not the cable's business: what a process cached of a product (its keys) goes.
        self._on_product_changed = on_product_changed
        self.registry = registry
        # Sockets per user across processes (Redis); without it, per process only.
        self.leases = leases
        self._revoked_among = revoked_among
        self._ping_interval = ping_interval
        self._session_check_interval = session_check_interval
        self.connections: set[CableConnection] = set()
        slices = max(1, round(ping_interval / PING_TICK))
        self._slices: list[set[CableConnection]] = [set() for _ in range(slices)]
        self._next_ping_slice = 0
        self._next_lease_slice = 0
        self._pings = PingFrames()
        self._by_session: dict[str, set[CableConnection]] = {}
        self._by_user: dict[tuple[int, str, int], set[CableConnection]] = {}
        self._expiry: dict[CableConnection, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on the broker (which the app starts and stops) and start the timers."""
        self.broker.listen(self.on_broker_message, self.recover_gap)
        timers: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
            ("cable-ping", self._ping_interval / len(self._slices), self._ping),
            ("cable-sessions", self._session_check_interval, self._check_sessions),
            ("cable-offsets", self._session_check_interval, self._forget_old_offsets),
        ]
        if self.leases is not None:
            lease_tick = self.leases.renew_every / len(self._slices)
            timers.append(("cable-leases", lease_tick, self._renew_leases))
        self._tasks = [
            asyncio.create_task(self._every(interval, action), name=name)
            for name, interval, action in timers
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks = []

    async def disconnect_all(self, reason: DisconnectReason) -> None:
        """Tell every socket `reason` and wait (briefly) until the frames have gone out."""
        for connection in list(self.connections):
            connection.disconnect(reason)
        waits = [c.wait_closed() for c in list(self.connections)]
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
        min(self._slices, key=len).add(connection)
        self._by_session.setdefault(connection.session_id, set()).add(connection)
        delay = max(0.0, connection.expires_at - time.time())
        self._expiry[connection] = asyncio.get_running_loop().call_later(
            delay, connection.disconnect, DisconnectReason.TOKEN_EXPIRED
        )
        return True

    def connections_by_product(self) -> dict[int, int]:
        """This process's open sockets, counted per product (for the live status)."""
        counts: dict[int, int] = {}
        for (product_id, _, _), peers in self._by_user.items():
            counts[product_id] = counts.get(product_id, 0) + len(peers)
        return counts

    async def remove(self, connection: CableConnection) -> None:
        """Forget the connection (its subscriptions leave their streams separately). The
        local state goes first, with no await before it: a handler cancelled while the lease
        is released must not leave the connection counted here."""
        leases = self.leases if connection in self.connections else None
        self.connections.discard(connection)
        for sockets in self._slices:
            sockets.discard(connection)
        _discard(self._by_session, connection.session_id, connection)
        _discard(self._by_user, connection.user_key, connection)
        timer = self._expiry.pop(connection, None)
        if timer is not None:
            timer.cancel()
        if leases is not None:
            await leases.release(connection.user_key, id(connection))

    # -- the broker -----------------------------------------------------------------------

    def on_broker_message(self, channel: str, raw: str) -> None:
        if channel == CONTROL_CHANNEL:
            self.on_control(raw)
            return
        try:
            offset, published_at, payload = parse_stream_message(raw)
        except ValueError:
            logger.warning("dropped a malformed message on %s", channel)
            return
        self.registry.broadcast(channel, payload, offset, published_at)

    def on_control(self, raw: str) -> None:
        try:
            message = decode_control(raw)
        except FrameError:
            logger.warning("dropped a malformed control message")
            return
        if isinstance(message, SessionsRevoked):
            self.revoke_sessions(message.session_ids)
        elif isinstance(message, RecoverGap):
            asyncio.get_running_loop().create_task(self.recover_gap(message.since))
        elif isinstance(message, ProductChanged) and self._on_product_changed is not None:
            self._on_product_changed(message.product_id)

    async def announce_revoked(self, session_ids: list[str]) -> None:
        """Tell every hub process (this one included) to end these sessions' sockets."""
        if session_ids:
            message = encode_control(SessionsRevoked(frozenset(session_ids)))
            await self.broker.publish(CONTROL_CHANNEL, message)

    async def announce_product_changed(self, product_id: int) -> None:
        """Tell every hub process (this one included) to drop what it cached of a product."""
        await self.broker.publish(CONTROL_CHANNEL, encode_control(ProductChanged(product_id)))

    def revoke_sessions(self, session_ids: set[str] | frozenset[str]) -> None:
        for sid in session_ids:
            for connection in list(self._by_session.get(sid, ())):
                connection.disconnect(DisconnectReason.UNAUTHORIZED)

    async def recover_gap(self, since: float) -> None:
        """Re-deliver from SQL what every stream may have missed since `since`.

        Revocations announced during the gap were lost with it: the sessions are checked
        first, so a socket logged out meanwhile is closed before anything is re-delivered."""
        try:
            await self._check_sessions()
        except Exception:
            logger.exception("checking sessions after a broker gap failed")
        moment = datetime.fromtimestamp(since, UTC)
        limit = asyncio.Semaphore(RECOVERY_CONCURRENCY)
        streams = list(self.registry.recoverable())

        async def recover(stream: str, missed_since: Recover) -> None:
            async with limit:
                try:
                    missed = await missed_since(moment)
                except Exception:
                    logger.exception("recovering %s failed", stream)
                    return
            for offset, payload in missed:
                self.registry.broadcast(stream, payload, offset)

        await asyncio.gather(*(recover(stream, missed_since) for stream, missed_since in streams))
        logger.info("recovered %d streams from SQL after a broker gap", len(streams))

    # -- timers ---------------------------------------------------------------------------

    async def _every(self, interval: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` every `interval` on a schedule, not `interval` after each run ends:
        the sliced timers tick 60 times a cycle, and the few milliseconds each tick starts
        late (or its Redis round trip takes) would add up to seconds a cycle, past a lease's
        life or a client's ping timeout. Late ticks catch up (yielding between them); a timer
        more than a whole cycle behind starts over rather than bursting."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += interval
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                if -delay > interval * len(self._slices):
                    due = loop.time()
                await asyncio.sleep(0)
            try:
                await action()
            except Exception:
                logger.exception("periodic cable task failed")

    async def _ping(self) -> None:
        frame = self._pings.at(time.time())
        for connection in self._slices[self._next_ping_slice]:
            connection.send(frame)
        self._next_ping_slice = (self._next_ping_slice + 1) % len(self._slices)

    async def _renew_leases(self) -> None:
        assert self.leases is not None
        sockets = self._slices[self._next_lease_slice]
        self._next_lease_slice = (self._next_lease_slice + 1) % len(self._slices)
        await self.leases.renew([(c.user_key, id(c)) for c in sockets])

    async def _forget_old_offsets(self) -> None:
        self.registry.forget_old_offsets()

    async def _check_sessions(self) -> None:
        # A backstop for revocations whose control message was lost (e.g. a Redis outage).
        if self._by_session:
            self.revoke_sessions(await self._revoked_among(set(self._by_session)))
