"""The cable in-process: endpoint session, host, registry and node over the memory broker, with
fake sockets. No uvicorn, no network, no database: a protocol change is tested in
milliseconds here; test_cable.py keeps the same behaviour honest over real sockets.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import time

import pytest
from starlette.websockets import WebSocketState

from channels.base import Channel
from hub.cable import eager
from hub.cable import registry as registry_module
from hub.cable.bucket import TokenBucket
from hub.cable.connection import CableConnection
from hub.cable.endpoint import CableEndpoint
from hub.cable.node import CableNode
from hub.cable.protocol import WELCOME, DisconnectReason, recover_notice
from hub.cable.registry import CableRegistry
from infra.broker import CONTROL_CHANNEL, Broker, stream_message
from infra.settings import CableLimits

ROOM = json.dumps({"channel": "RoomChannel", "room": "a"})


class FakeSocket:
    """What the cable uses of a Starlette WebSocket: receive, send_text, close and
    application_state. Its writes finish at once unless `back_up` made them wait (a client
    that stopped reading). Pings land in `pings`, apart from `sent`: they come every 0.05 s
    here, and a count of the frames a test is waiting for must not depend on the clock."""

    def __init__(self) -> None:
        self.application_state = WebSocketState.CONNECTED
        self.scope: dict = {"type": "websocket", "extensions": {}}  # no direct write offered
        self.sent: list[str] = []
        self.pings: list[str] = []
        self.inbox: asyncio.Queue[dict] = asyncio.Queue()
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()

    async def receive(self) -> dict:
        return await self.inbox.get()

    async def send_text(self, text: str) -> None:
        if not self.writable.is_set():
            await self.writable.wait()
        (self.pings if text.startswith('{"type":"ping"') else self.sent).append(text)

    def back_up(self) -> None:
        self.writable.clear()

    def drain(self) -> None:
        self.writable.set()

    async def close(self, code: int = 1000) -> None:
        self.closed = True
        self.application_state = WebSocketState.DISCONNECTED

    def push(self, command: dict | str | bytes) -> None:
        if isinstance(command, bytes):
            self.inbox.put_nowait({"type": "websocket.receive", "bytes": command})
            return
        text = command if isinstance(command, str) else json.dumps(command)
        self.inbox.put_nowait({"type": "websocket.receive", "text": text})

    def leave(self) -> None:
        self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    def frames(self) -> list[dict]:
        return [json.loads(frame) for frame in self.sent]


class RoomService:
    """A stand-in service; the channel gets it in its constructor, as in create_app."""

    def __init__(self) -> None:
        self.missed: list[tuple[int, str]] = []
        self.shouted: list[str] = []

    async def recover(self, since: object) -> list[tuple[int, str]]:
        return self.missed


class RoomChannel(Channel):
    name = "RoomChannel"
    actions = frozenset({"shout"})

    def __init__(self, host, connection, identifier, params, *, service: RoomService) -> None:
        super().__init__(host, connection, identifier, params)
        self.service = service

    async def subscribed(self) -> None:
        if self.params.get("room") == "closed":
            self.reject()
            return
        await self.stream_from(f"room:{self.params['room']}", self.service.recover)

    async def shout(self, data: dict) -> None:
        self.service.shouted.append(data.get("text"))
        self.transmit({"heard": data.get("text")})


async def until(condition, within: float = 1.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.001)


class Cable:
    """One in-process cable: a memory broker, a registry, a node and an endpoint."""

    def __init__(
        self,
        limits: CableLimits,
        revoked: set[str],
        ping_interval: float = 0.05,
        leases: object = None,
    ) -> None:
        self.limits = limits
        self.service = RoomService()
        self.broker = Broker(gap_notice=recover_notice)
        self.registry = CableRegistry(self.broker)

        async def revoked_among(sids: set[str]) -> set[str]:
            return sids & revoked

        self.node = CableNode(
            self.broker,
            self.registry,
            revoked_among=revoked_among,
            ping_interval=ping_interval,
            session_check_interval=0.05,
            leases=leases,  # type: ignore[arg-type]
        )
        channels = {"RoomChannel": functools.partial(RoomChannel, service=self.service)}
        self.endpoint = CableEndpoint(node=self.node, channels=channels, limits=limits)
        self.sessions: list[asyncio.Task] = []
        self._ids = 0

    def connect(
        self,
        user_id: int = 1,
        session_id: str = "s1",
        expires_in: float = 3600,
        max_queue: int = 256,
        actions: TokenBucket | None = None,
    ) -> tuple[FakeSocket, CableConnection]:
        socket = FakeSocket()
        connection = CableConnection(
            socket,
            user_id=user_id,
            product_id=1,
            env="live",
            session_id=session_id,
            locale="en",
            expires_at=time.time() + expires_in,
            max_queue=max_queue,
            actions=actions
            or TokenBucket(self.limits.actions_per_second, self.limits.action_burst),
        )
        self.sessions.append(asyncio.create_task(self.endpoint.session(connection)))
        return socket, connection

    async def joined(self, socket: FakeSocket, identifier: str = ROOM) -> None:
        socket.push({"command": "subscribe", "identifier": identifier})
        await until(lambda: any(f.get("identifier") == identifier for f in socket.frames()))


@pytest.fixture
async def cable():
    revoked: set[str] = set()
    cable = Cable(CableLimits(max_sockets_per_user=2), revoked)
    cable.revoked = revoked
    await cable.broker.start()
    await cable.node.start()
    yield cable
    await cable.node.disconnect_all(DisconnectReason.SERVER_RESTART)
    await asyncio.wait_for(asyncio.gather(*cable.sessions, return_exceptions=True), 2)
    await cable.node.stop()
    await cable.broker.stop()


def last(socket: FakeSocket) -> dict:
    return socket.frames()[-1]


async def test_welcome_then_subscribe_is_confirmed(cable):
    socket, _ = cable.connect()
    await until(lambda: socket.sent)
    assert socket.sent[0] == WELCOME
    await cable.joined(socket)
    assert last(socket) == {"identifier": ROOM, "type": "confirm_subscription"}
    # The JS client retries until confirmed: a second subscribe is confirmed, not doubled.
    await cable.joined(socket)
    assert len(cable.registry) == 1


@pytest.mark.parametrize(
    "identifier",
    [
        json.dumps({"channel": "NoSuchChannel"}),
        json.dumps({"channel": "RoomChannel", "room": "closed"}),
        "not json",
    ],
)
async def test_subscriptions_the_hub_rejects(cable, identifier):
    socket, connection = cable.connect()
    await cable.joined(socket, identifier)
    assert last(socket) == {"identifier": identifier, "type": "reject_subscription"}
    assert connection.subscriptions == {} and len(cable.registry) == 0


async def test_a_broadcast_is_encoded_once_and_reaches_every_subscriber(cable, monkeypatch):
    encoded = []
    build = registry_module.broadcast_frame
    monkeypatch.setattr(
        registry_module, "broadcast_frame", lambda *a: encoded.append(a) or build(*a)
    )
    (one, _), (two, _) = cable.connect(user_id=1), cable.connect(user_id=2)
    await cable.joined(one)
    await cable.joined(two)
    await cable.broker.publish("room:a", stream_message('{"text":"hi"}', offset=1))
    await until(lambda: len(one.sent) == 3 and len(two.sent) == 3)
    assert one.sent[-1] is two.sent[-1]  # the same string object, queued on both
    assert len(encoded) == 1
    assert last(one) == {"identifier": ROOM, "message": '{"text":"hi"}'}


async def test_an_action_is_performed_and_answered_on_its_subscription(cable):
    socket, _ = cable.connect()
    await cable.joined(socket)
    data = json.dumps({"action": "shout", "text": "hey"})
    socket.push({"command": "message", "identifier": ROOM, "data": data})
    await until(lambda: cable.service.shouted == ["hey"] and len(socket.sent) == 3)
    assert last(socket) == {"identifier": ROOM, "message": {"heard": "hey"}}


async def test_an_action_over_the_rate_is_dropped_and_answered(cable):
    # One token a second: a busy machine cannot refill the bucket between these frames.
    socket, _ = cable.connect(actions=TokenBucket(rate=1, burst=2))
    await cable.joined(socket)  # the subscription takes a token too
    for text in ("one", "two", "three"):
        data = json.dumps({"action": "shout", "text": text})
        socket.push({"command": "message", "identifier": ROOM, "data": data})
    # "three" is read after the reader's pause (one token's time).
    await until(lambda: len(cable.service.shouted) == 2, within=3)
    assert cable.service.shouted == ["one", "three"]
    assert socket.frames()[3] == {
        "identifier": ROOM,
        "message": {"action": "error", "for": "shout", "code": "rate_limited"},
    }


async def test_every_subscribe_draws_on_the_action_budget(cable):
    # A repeated subscribe (and a rejected one) is never dropped but waits for its token like
    # a new subscription, so answers cannot be had faster than the budget allows.
    socket, _ = cable.connect(actions=TokenBucket(rate=20, burst=1))
    await cable.joined(socket)  # the one token of the burst
    started = time.monotonic()
    for _ in range(5):
        socket.push({"command": "subscribe", "identifier": ROOM})
    closed = json.dumps({"channel": "RoomChannel", "room": "closed"})
    socket.push({"command": "subscribe", "identifier": closed})

    def answers() -> list[dict]:
        return socket.frames()[2:]

    await until(lambda: len(answers()) == 6)
    # Six tokens at 20 a second: 0.3 s, less what refilled while the test looked on.
    assert time.monotonic() - started > 0.2
    assert answers() == [
        *[{"identifier": ROOM, "type": "confirm_subscription"}] * 5,
        {"identifier": closed, "type": "reject_subscription"},
    ]


async def test_malformed_commands_are_ignored_without_touching_other_sockets(cable):
    (bad, bad_connection), (good, _) = cable.connect(user_id=1), cable.connect(user_id=2)
    await cable.joined(bad)
    await cable.joined(good)
    for command in (
        "not json",
        b"binary",
        {"command": "dance", "identifier": ROOM},
        {"command": "message", "identifier": ROOM, "data": "{}"},
        {"command": "message", "identifier": ROOM, "data": '{"action":"fly"}'},
        {"command": "unsubscribe", "identifier": "unknown"},
        "x" * 70_000,
    ):
        bad.push(command)
    await until(lambda: bad_connection.invalid_commands == 7)
    assert not bad_connection.closing and len(bad.sent) == 2  # nothing answered, nothing closed
    await cable.broker.publish("room:a", stream_message('"still here"'))
    await until(lambda: len(good.sent) == 3 and len(bad.sent) == 3)
    # Enough bad frames end that socket alone.
    for _ in range(13):
        bad.push("nope")
    await until(lambda: bad.closed)
    assert last(bad) == {"type": "disconnect", "reason": "invalid_request", "reconnect": False}
    await cable.broker.publish("room:a", stream_message('"after"'))
    await until(lambda: len(good.sent) == 4)
    assert not good.closed


async def test_unauthorized_when_the_session_is_revoked_by_a_control_message(cable):
    (socket, _), (other, _) = cable.connect(session_id="gone"), cable.connect(session_id="kept")
    await until(lambda: socket.sent and other.sent)
    await cable.node.announce_revoked(["gone"])  # over the broker, as from another process
    await until(lambda: socket.closed)
    assert last(socket) == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    assert not other.closed


async def test_unauthorized_when_the_sweep_finds_the_session_revoked(cable):
    socket, _ = cable.connect(session_id="lost-message")
    cable.revoked.add("lost-message")
    await until(lambda: socket.closed)
    assert last(socket)["reason"] == "unauthorized"


async def test_token_expired(cable):
    socket, _ = cable.connect(expires_in=0.01)
    await until(lambda: socket.closed)
    assert last(socket) == {"type": "disconnect", "reason": "token_expired", "reconnect": True}


async def test_invalid_request_over_the_socket_limit(cable):
    cable.connect()
    cable.connect()
    third, _ = cable.connect()
    await until(lambda: third.closed)
    assert third.frames() == [
        {"type": "disconnect", "reason": "invalid_request", "reconnect": False}
    ]


async def test_too_slow_when_the_send_queue_fills(cable):
    socket, connection = cable.connect(max_queue=4)
    await cable.joined(socket)
    before = len(socket.sent)
    socket.back_up()
    for n in range(10):  # the first write waits; 4 queue behind it; the 6th is one too many
        cable.registry.broadcast("room:a", json.dumps(n))
    assert connection.closing and not socket.closed
    socket.drain()
    await until(lambda: socket.closed)
    # The waiting write, then the verdict: the backlog is dropped, not sent.
    assert [json.loads(f["message"]) for f in socket.frames()[before:-1]] == [0]
    assert last(socket) == {"type": "disconnect", "reason": "too_slow", "reconnect": True}


async def test_a_socket_that_keeps_up_is_written_inline(cable):
    socket, _ = cable.connect()
    await cable.joined(socket)
    tasks = len(asyncio.all_tasks())
    cable.registry.broadcast("room:a", json.dumps("hello"))
    # Written before this coroutine yields, and no task was made for it.
    assert json.loads(last(socket)["message"]) == "hello"
    assert len(asyncio.all_tasks()) == tasks


async def test_a_backed_up_socket_keeps_its_frames_in_order(cable):
    socket, connection = cable.connect()
    await cable.joined(socket)
    before = len(socket.sent)
    socket.back_up()
    for n in range(5):
        cable.registry.broadcast("room:a", json.dumps(n))
    socket.drain()
    await until(lambda: len(socket.sent) == before + 5)
    assert [json.loads(f["message"]) for f in socket.frames()[before:]] == [0, 1, 2, 3, 4]
    assert not connection.closing
    # Caught up: the next frame is written inline again.
    cable.registry.broadcast("room:a", json.dumps(5))
    assert json.loads(last(socket)["message"]) == 5


async def test_a_client_that_leaves_while_a_write_waits_ends_its_session(cable):
    socket, connection = cable.connect()
    await cable.joined(socket)
    tasks = len(asyncio.all_tasks())
    socket.back_up()  # and it never drains again
    cable.registry.broadcast("room:a", json.dumps("stuck"))
    assert len(asyncio.all_tasks()) == tasks + 1  # the waiting write
    socket.leave()
    await asyncio.wait_for(cable.sessions[-1], 3)  # gives up on the write after its grace
    await until(lambda: len(asyncio.all_tasks()) == tasks - 1)  # the write and the session
    assert socket.closed and connection not in cable.node.connections


async def test_eager_start_runs_inline_and_becomes_a_task_only_when_it_waits():
    seen: list[object] = []

    async def write(gate: asyncio.Future | None) -> None:
        seen.append("started")
        try:
            if gate is not None:
                seen.append(await gate)
            seen.append("done")
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    assert eager.start(write(None)) is None and seen == ["started", "done"]

    seen.clear()
    gate = asyncio.get_running_loop().create_future()
    task = eager.start(write(gate))
    assert task is not None and seen == ["started"]  # ran up to the wait, inline
    gate.set_result("result")
    await task
    assert seen == ["started", "result", "done"]

    seen.clear()
    gate = asyncio.get_running_loop().create_future()
    task = eager.start(write(gate))
    gate.set_exception(OSError("peer gone"))
    with pytest.raises(OSError):
        await task

    seen.clear()
    gate = asyncio.get_running_loop().create_future()
    task = eager.start(write(gate))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["started", "cancelled"] and gate.cancelled()

    async def one_turn() -> None:  # a bare yield, not a future
        await asyncio.sleep(0)
        seen.append("after a turn")

    seen.clear()
    task = eager.start(one_turn())
    assert task is not None and seen == []
    await task
    assert seen == ["after a turn"]


async def test_one_task_per_socket(cable):
    """The session's own task reads the socket; writing needs none while it keeps up."""
    tasks = len(asyncio.all_tasks())
    sockets = [cable.connect(user_id=n)[0] for n in range(10)]
    for socket in sockets:
        await cable.joined(socket)
    assert len(asyncio.all_tasks()) == tasks + 10


async def test_the_hub_ending_a_socket_ends_its_session(cable):
    socket, connection = cable.connect()
    await cable.joined(socket)
    connection.disconnect(DisconnectReason.UNAUTHORIZED)
    await asyncio.wait_for(cable.sessions[-1], 1)  # ended, not cancelled
    assert not cable.sessions[-1].cancelled() and socket.closed
    assert connection not in cable.node.connections and len(cable.registry) == 0


async def test_server_restart_reaches_every_socket(cable):
    sockets = [cable.connect(user_id=n)[0] for n in range(3)]
    await until(lambda: all(s.sent for s in sockets))
    await cable.node.disconnect_all(DisconnectReason.SERVER_RESTART)
    for socket in sockets:
        assert last(socket) == {"type": "disconnect", "reason": "server_restart", "reconnect": True}


async def test_pings(cable):
    socket, _ = cable.connect()
    await until(lambda: socket.pings)
    assert json.loads(socket.pings[0])["type"] == "ping"


async def test_a_ping_tick_writes_one_frame_object_to_every_socket(cable):
    sockets = [cable.connect(user_id=n)[0] for n in range(3)]

    await until(lambda: all(len(s.pings) >= 2 for s in sockets))
    # Frames of the same second are one str object, encoded once for every socket.
    by_text: dict[str, set[int]] = {}
    for socket in sockets:
        for frame in socket.pings:
            by_text.setdefault(frame, set()).add(id(frame))
    assert all(len(ids) == 1 for ids in by_text.values())


class RecordingLeases:
    """Socket leases that admit everyone and record each renewal batch (Redis's side is
    tested in test_cable_limits; this checks how the node schedules renewals)."""

    renew_every = 0.6

    def __init__(self, round_trip: float = 0.0) -> None:
        self.batches: list[list[tuple]] = []
        self.renewed_at: dict[int, list[float]] = {}
        self.round_trip = round_trip

    async def admit(self, user: tuple, socket_id: int, limit: int) -> bool:
        return True

    async def release(self, user: tuple, socket_id: int) -> None:
        pass

    async def renew(self, sockets: list[tuple]) -> None:
        self.batches.append(sockets)
        for _, socket_id in sockets:
            self.renewed_at.setdefault(socket_id, []).append(time.monotonic())
        if self.round_trip:
            await asyncio.sleep(self.round_trip)

    async def close(self) -> None:
        pass


async def test_lease_renewal_is_spread_over_its_interval_in_small_batches():
    # One pipeline renewing every socket's lease at once held every delivery behind it.
    leases = RecordingLeases()
    cable = Cable(CableLimits(max_sockets_per_user=2), set(), ping_interval=3.0, leases=leases)
    await cable.broker.start()
    await cable.node.start()
    try:
        connections = [cable.connect(user_id=n)[1] for n in range(240)]
        await until(lambda: len(cable.node.connections) == 240)
        leases.batches.clear()
        await asyncio.sleep(leases.renew_every * 1.5)
        renewed = {socket_id for batch in leases.batches for _, socket_id in batch}
        assert renewed >= {id(c) for c in connections}  # everyone within one interval
        assert max(len(batch) for batch in leases.batches) <= 240 // 60 + 1
    finally:
        await cable.node.disconnect_all(DisconnectReason.SERVER_RESTART)
        await asyncio.wait_for(asyncio.gather(*cable.sessions, return_exceptions=True), 2)
        await cable.node.stop()
        await cable.broker.stop()


async def test_lease_renewal_keeps_its_schedule_when_each_round_trip_takes_time():
    # Ticks that each started a round trip late used to add up: 60 ticks a cycle, each a few
    # milliseconds late, stretched a socket's renewals past its lease.
    leases = RecordingLeases(round_trip=0.004)
    cable = Cable(CableLimits(max_sockets_per_user=2), set(), ping_interval=3.0, leases=leases)
    await cable.broker.start()
    await cable.node.start()
    try:
        for n in range(120):
            cable.connect(user_id=n)
        await until(lambda: len(cable.node.connections) == 120)
        await asyncio.sleep(leases.renew_every * 4)
        gaps = [
            later - earlier
            for times in leases.renewed_at.values()
            for earlier, later in itertools.pairwise(times)
        ]
        assert gaps and max(gaps) < leases.renew_every * 1.25, max(gaps)
    finally:
        await cable.node.disconnect_all(DisconnectReason.SERVER_RESTART)
        await asyncio.wait_for(asyncio.gather(*cable.sessions, return_exceptions=True), 2)
        await cable.node.stop()
        await cable.broker.stop()


async def test_leaving_frees_the_stream_and_the_user_slot(cable):
    socket, connection = cable.connect()
    await cable.joined(socket)
    socket.leave()
    await until(lambda: connection not in cable.node.connections and len(cable.registry) == 0)


async def test_a_recover_control_message_redelivers_from_the_stream_once(cable):
    socket, _ = cable.connect()
    await cable.joined(socket)
    cable.service.missed = [(41, '"missed"')]
    await cable.broker.publish(CONTROL_CHANNEL, recover_notice(time.time() - 5))
    await until(lambda: len(socket.sent) == 3)
    assert last(socket)["message"] == '"missed"'
    # The original arriving late, and a second recovery, are not delivered again.
    await cable.broker.publish("room:a", stream_message('"missed"', offset=41))
    await cable.node.recover_gap(time.time() - 5)
    await cable.broker.publish("room:a", stream_message('"next"', offset=42))
    await until(lambda: len(socket.sent) == 4)
    assert last(socket)["message"] == '"next"'


async def test_after_a_gap_a_session_revoked_meanwhile_is_closed_before_redelivery(cable):
    socket, _ = cable.connect(session_id="logged-out-during-the-gap")
    await cable.joined(socket)
    cable.service.missed = [(43, '"sent after the logout"')]
    cable.revoked.add("logged-out-during-the-gap")  # its control message was lost in the gap
    await cable.node.recover_gap(time.time() - 5)
    await until(lambda: socket.closed)
    assert last(socket)["reason"] == "unauthorized"
    assert all(frame.get("message") != '"sent after the logout"' for frame in socket.frames())
