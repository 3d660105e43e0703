"""Fuzzing the cable: thousands of malformed frames from several connections at once.

What must hold while it rains garbage: an offender is only ever told `invalid_request` (after
20 bad commands) and nothing else; a well-behaved client on the same hub (of the same user as
some offenders) receives every notification published meanwhile, once; afterwards the hub
answers /healthz, serves a fresh client, is alive, and logged no traceback.

The frames come from a seeded generator: `HUB_FUZZ_SEED=<n>` replays a run, and a failure
names the seed and the frames the offending connection sent last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import scratch_postgres
from tests.support import (
    NOTIFICATIONS_IDENTIFIER,
    HubServer,
    api_user,
    cable,
    create_product,
    publish,
)

SEED = int(os.environ.get("HUB_FUZZ_SEED", "20261122"))
FRAMES = 8000
OFFENDERS = 4
BATCH = 8  # frames between two barriers (a duplicate subscribe, answered with a confirm)
NI = NOTIFICATIONS_IDENTIFIER
INVALID_REQUEST = {"type": "disconnect", "reason": "invalid_request", "reconnect": False}

# Frames that once ended the connection with an unhandled exception in its reader (deep
# nesting, unhashable channel names, non-ASCII digits, ids beyond 64 bits): the hub answered
# {"type":"disconnect","reason":"remote",...} and never counted them. See test_crasher_*.


# -- the hub --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A scratch PostgreSQL database when `DATABASE_URL` names one (the hub's own SQLite file
    otherwise)."""
    with scratch_postgres() as url:
        yield url


def start_hub(workdir: Path, database_url: str | None) -> HubServer:
    workdir.mkdir(parents=True, exist_ok=True)
    # Info level: at debug uvicorn logs every frame, which slows the hub down a lot here.
    hub = HubServer(workdir=workdir, database_url=database_url, extra_env={"HUB_LOG_LEVEL": "info"})
    hub.start()
    return hub


@pytest.fixture(scope="module")
def crash_hub(tmp_path_factory, fuzz_database) -> Iterator[tuple[HubServer, str]]:
    hub = start_hub(tmp_path_factory.mktemp("crash-hub"), fuzz_database)
    try:
        yield hub, create_product(hub)["sk_live"]
    finally:
        hub.stop()


async def wait_until(condition, within: float) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s")
        await asyncio.sleep(0.02)


# -- the generator --------------------------------------------------------------------------


def _command(kind: object, identifier: object, **extra: object) -> str:
    return json.dumps({"command": kind, "identifier": identifier, **extra})


def _message(data: object, identifier: str = NI) -> str:
    return _command("message", identifier, data=data)


def _action(action: object, **fields: object) -> str:
    return _message(json.dumps({"action": action, **fields}))


WRONG_VALUES: list[object] = [None, 0, -1, 1.5, True, [], {}, [NI], {"channel": 1}, "", "x"]


def survivable_frame(rng: random.Random, foreign_id: int) -> tuple[str, str | bytes]:
    """(category, frame) of a frame that must never cost the connection more than a count."""
    category = rng.choices(
        [
            "random_text",
            "truncated_json",
            "wrong_types",
            "huge",
            "binary",
            "unknown_identifier",
            "bad_subscribe",
            "bad_message",
            "bad_mark_read",
            "bad_sync",
            "valid",
        ],
        weights=[10, 10, 14, 1, 6, 8, 8, 12, 10, 6, 10],
    )[0]
    if category == "random_text":
        return category, rng.randbytes(rng.randint(0, 300)).decode("latin-1")
    if category == "truncated_json":
        whole = rng.choice(
            [_command("subscribe", NI), _action("mark_read", id=1), _action("sync", since=0)]
        )
        return category, whole[: rng.randrange(0, len(whole))]
    if category == "wrong_types":
        kind = rng.choice([*WRONG_VALUES, "subscribe", "message", "unsubscribe", "SUBSCRIBE"])
        identifier = rng.choice([*WRONG_VALUES, NI])
        frame: dict[str, object] = {"command": kind, "identifier": identifier}
        if rng.random() < 0.5:
            frame["data"] = rng.choice([*WRONG_VALUES, '{"action": "sync"}'])
        if rng.random() < 0.2:
            frame = rng.choice([[frame], "frame", 7, None, {"data": "x"}])  # type: ignore[assignment]
        return category, json.dumps(frame)
    if category == "huge":
        size = rng.randint(64 * 1024 + 1, 200 * 1024)
        if rng.random() < 0.5:
            return category, _action("sync", since=0, pad="p" * size)
        return category, "".join(rng.choices('{}[]":,abc ', k=size))
    if category == "binary":
        return category, rng.choice(
            [rng.randbytes(rng.randint(0, 200)), _command("subscribe", NI).encode()]
        )
    if category == "unknown_identifier":
        identifier = json.dumps({"channel": "NotificationsChannel", "tab": rng.randint(1, 10**9)})
        return category, rng.choice(
            [
                _message(json.dumps({"action": "sync"}), identifier),
                _command("unsubscribe", identifier),
                _command("message", "no such identifier", data="{}"),
            ]
        )
    if category == "bad_subscribe":
        return category, _command(
            "subscribe",
            rng.choice(
                [
                    "{channel",
                    "NotificationsChannel",
                    "",
                    "[]",
                    "null",
                    "42",
                    '"NotificationsChannel"',
                    json.dumps({"channel": "AdminChannel"}),
                    json.dumps({"channel": None}),
                    json.dumps({"channel": 7}),
                    json.dumps({"chanel": "NotificationsChannel"}),
                    rng.randbytes(40).decode("latin-1"),
                ]
            ),
        )
    if category == "bad_message":
        data = rng.choice(
            [
                *WRONG_VALUES,
                "not json",
                "{",
                "[]",
                '"sync"',
                "{}",
                json.dumps({"action": None}),
                json.dumps({"action": 5}),
                json.dumps({"action": ["sync"]}),
                json.dumps({"action": "explode"}),
                json.dumps({"action": "__init__"}),
                json.dumps({"action": "transmit"}),
                json.dumps({"action": "perform"}),
                json.dumps({"action": "x" * 5000}),
            ]
        )
        return category, _message(data)
    if category == "bad_mark_read":
        ident = rng.choice(
            [None, "abc", "", "12abc", " 1", -1, 0, 1.5, True, False, [], {}, [1], 10**6, 2**63 - 1]
        )
        if rng.random() < 0.2:
            ident = foreign_id  # someone else's notification
        fields = {} if rng.random() < 0.1 else {"id": ident}
        return category, _action("mark_read", **fields)
    if category == "bad_sync":
        since = rng.choice(["x", -1, 1.5, True, [], {}, "-3", "", 0, "7"])
        return category, _action("sync", since=since)
    return category, rng.choice(
        [
            _command("subscribe", NI),
            _action("sync", since=0),
            _action("mark_all_read"),
            _command("unsubscribe", NI),
        ]
    )


def crasher_frame(rng: random.Random) -> tuple[str, str]:
    """A frame of the kinds that once crashed a connection's reader."""
    depth = rng.randint(2_000, 30_000)
    return rng.choice(
        [
            ("deep_nesting", "[" * depth),
            ("deep_nesting", '{"a":' * (depth // 3)),  # 5 chars a level: under 64 KiB
            ("deep_nesting", _command("subscribe", "[" * depth)),
            ("deep_nesting", _message("[" * depth)),
            ("int_overflow", _action("mark_read", id=2 ** rng.randint(63, 80))),
            ("int_overflow", _action("sync", since=2 ** rng.randint(63, 80))),
            ("unicode_digits", _action("mark_read", id=rng.choice(["²", "①", "¹²"]))),
            ("unicode_digits", _action("sync", since=rng.choice(["²", "③"]))),
            ("unhashable_channel", _command("subscribe", json.dumps({"channel": []}))),
            ("unhashable_channel", _command("subscribe", json.dumps({"channel": {"a": 1}}))),
            ("non_finite", _message('{"action":"sync","since":NaN}')),
            ("non_finite", _message('{"action":"mark_read","id":1e999}')),
            ("non_finite", _command("subscribe", '{"channel":"NotificationsChannel","x":NaN}')),
            ("lone_surrogate", _message('{"action":"sync","since":"\\ud800"}')),
            ("lone_surrogate", _command("subscribe", '{"channel":"\\udc00"}')),
            ("nul", _message('{"action":"mark_read","id":"\\u0000"}')),
        ]
    )


# -- the offenders --------------------------------------------------------------------------


class Offender:
    """One misbehaving client: sends its share of frames, reconnecting whenever the hub closes
    it; checks every verdict."""

    def __init__(self, hub: HubServer, token: str, frames: list[tuple[str, str | bytes]]) -> None:
        self.hub, self.token, self.frames = hub, token, frames
        self.sent = 0
        self.connections = 0
        self.verdicts: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.categories: Counter[str] = Counter()

    async def _connect(self):
        url = self.hub.url.replace("http://", "ws://") + f"/cable?token={self.token}"
        ws = await websockets.connect(url, subprotocols=["actioncable-v1-json"], max_size=None)
        self.connections += 1
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "welcome"}
        await ws.send(_command("subscribe", NI))
        return ws

    async def _barrier(self, ws, recent: deque) -> bool:
        """True once the hub confirmed a duplicate subscribe, i.e. it handled every frame
        before it; False if it closed the connection instead (its verdict is checked)."""
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(_command("subscribe", NI))
        return await self._read_until_confirmed(ws, recent)

    async def _read_until_confirmed(self, ws, recent: deque) -> bool:
        deadline = time.monotonic() + 20
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
                if frame == {"identifier": NI, "type": "confirm_subscription"}:
                    return True
                if frame.get("type") == "disconnect":
                    self.verdicts[frame["reason"]] += 1
                    if frame != INVALID_REQUEST:
                        self.unexpected.append(f"{frame} after {list(recent)}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(ws.wait_closed(), 10)
                    return False
        except websockets.ConnectionClosed:
            self.unexpected.append(f"closed without a verdict after {list(recent)}")
            return False

    async def run(self) -> None:
        recent: deque[str] = deque(maxlen=BATCH)
        ws = await self._connect()
        try:
            for start in range(0, len(self.frames), BATCH):
                with contextlib.suppress(websockets.ConnectionClosed):
                    for category, frame in self.frames[start : start + BATCH]:
                        recent.append(f"{category}: {frame[:160]!r}")
                        self.categories[category] += 1
                        await ws.send(frame)
                        self.sent += 1
                if not await self._barrier(ws, recent):
                    recent.clear()
                    await ws.close()
                    ws = await self._connect()
        finally:
            await ws.close()


async def _fuzz(tmp_path: Path, database_url: str | None, with_crashers: bool) -> None:
    rng = random.Random(SEED)
    hub = await asyncio.to_thread(start_hub, tmp_path / "hub", database_url)
    victim_listener = None
    try:
        sk = (await asyncio.to_thread(create_product, hub))["sk_live"]
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
            victim_user, victim_token = await api_user(http, sk)
            other_user, _ = await api_user(http, sk)
            [foreign_id] = await publish(http, sk, other_user)
            victim = await cable(hub.url, victim_token)
            victim_ids: list[int] = []
            victim_frames: list[dict] = []

            async def listen() -> None:
                with contextlib.suppress(websockets.ConnectionClosed):
                    async for raw in victim.ws:
                        frame = json.loads(raw)
                        victim_frames.append(frame)
                        if "identifier" in frame and "message" in frame:
                            message = json.loads(frame["message"])
                            if message.get("action") == "new_notification":
                                victim_ids.append(message["notification"]["id"])

            victim_listener = asyncio.create_task(listen())

            def frame_for() -> tuple[str, str | bytes]:
                if with_crashers and rng.random() < 0.02:
                    return crasher_frame(rng)
                return survivable_frame(rng, foreign_id)

            # Offenders 0 and 1 share the victim's user (and stream); 2 and 3 are others.
            tokens = [victim_token, victim_token]
            tokens += [(await api_user(http, sk))[1] for _ in range(OFFENDERS - 2)]
            offenders = [
                Offender(hub, token, [frame_for() for _ in range(FRAMES // OFFENDERS)])
                for token in tokens
            ]

            published: list[int] = []
            done = asyncio.Event()

            async def publisher() -> None:
                while not done.is_set() and len(published) < 400:
                    published.extend(await publish(http, sk, victim_user, title="during"))
                    await asyncio.sleep(0.02)

            publishing = asyncio.create_task(publisher())
            started = time.monotonic()
            try:
                await asyncio.wait_for(asyncio.gather(*(o.run() for o in offenders)), 120)
            finally:
                done.set()
                await publishing
            elapsed = time.monotonic() - started

            summary = (
                f"seed {SEED}: {sum(o.sent for o in offenders)} frames in {elapsed:.1f} s over "
                f"{sum(o.connections for o in offenders)} connections; verdicts "
                f"{sum((o.verdicts for o in offenders), Counter())}"
            )
            unexpected = [u for o in offenders for u in o.unexpected]
            assert not unexpected, f"{summary}\n" + "\n".join(unexpected[:5])
            assert sum(o.sent for o in offenders) >= 5000, summary
            assert sum(o.verdicts["invalid_request"] for o in offenders) > 0, summary

            # The well-behaved client heard every notification of the storm, once.
            assert len(published) >= 10, summary
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: set(victim_ids) >= set(published), 10)
            assert sorted(victim_ids) == sorted(published), summary
            assert not [f for f in victim_frames if f.get("type") == "disconnect"]

            # Afterwards: healthy, serving, alive, and no traceback in the log.
            assert (await http.get("/healthz")).status_code == 200
            fresh_user, fresh_token = await api_user(http, sk, external_id=uuid.uuid4().hex)
            fresh = await cable(hub.url, fresh_token)
            try:
                [fresh_id] = await publish(http, sk, fresh_user)
                got = await fresh.next_message("new_notification")
                assert got["notification"]["id"] == fresh_id
                await fresh.perform("sync", since=0)
                assert [n["id"] for n in (await fresh.next_message("sync"))["notifications"]] == [
                    fresh_id
                ]
            finally:
                await fresh.close()
            assert hub.process.poll() is None
            assert "Traceback" not in hub.logs()
    finally:
        if victim_listener is not None:
            victim_listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await victim_listener
        hub.stop()


async def test_fuzz_the_cable_with_malformed_frames(tmp_path, fuzz_database):
    await _fuzz(tmp_path, fuzz_database, with_crashers=False)


async def test_fuzz_the_cable_including_frames_that_once_crashed_the_reader(
    tmp_path, fuzz_database
):
    await _fuzz(tmp_path, fuzz_database, with_crashers=True)


# -- the crashers, one by one ---------------------------------------------------------------

DEPTH = 20_000  # well under the 64 KiB frame limit, well over Python's recursion limit

CRASHERS = {
    "deeply nested frame": ("[" * DEPTH, None),
    "deeply nested object frame": ('{"a":' * (DEPTH // 2), None),
    "deeply nested identifier": (_command("subscribe", "[" * DEPTH), "reject_subscription"),
    "deeply nested data": (_message("[" * DEPTH), None),
    "channel is a list": (
        _command("subscribe", json.dumps({"channel": []})),
        "reject_subscription",
    ),
    "channel is an object": (
        _command("subscribe", json.dumps({"channel": {"a": 1}})),
        "reject_subscription",
    ),
    "mark_read id over bigint": (_action("mark_read", id=2**64), "error"),
    "mark_read id unicode digit": (_action("mark_read", id="²"), "error"),
    "sync since over bigint": (_action("sync", since=2**64), "error"),
    "sync since unicode digit": (_action("sync", since="①"), "error"),
    # Not what JSON.stringify produces: counted as invalid, never handed to an action.
    "sync since NaN": (_message('{"action":"sync","since":NaN}'), None),
    "mark_read id Infinity": (_message('{"action":"mark_read","id":Infinity}'), None),
    "mark_read id 1e999": (_message('{"action":"mark_read","id":1e999}'), None),
    "sync since lone surrogate": (_message('{"action":"sync","since":"\\ud800"}'), None),
    "mark_read id with NUL": (_message('{"action":"mark_read","id":"1\\u0000"}'), None),
    "NaN in the identifier": (
        _command("subscribe", '{"channel":"NotificationsChannel","x":NaN}'),
        "reject_subscription",
    ),
    "lone surrogate in the identifier": (
        _command("subscribe", '{"channel":"NotificationsChannel","x":"\\ud800"}'),
        "reject_subscription",
    ),
}


@pytest.mark.parametrize("name", list(CRASHERS))
async def test_crasher_is_answered_or_counted_not_fatal(crash_hub, name):
    """Each frame either gets its answer (a reject, or the action's error) or is counted as
    invalid; the connection stays usable."""
    hub, sk = crash_hub
    frame, answer = CRASHERS[name]
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        _, token = await api_user(http, sk)
    tab = await cable(hub.url, token)
    try:
        await tab.send(frame)
        await tab.send(_command("subscribe", NI))  # barrier: confirmed once the frame is handled
        frames = []
        while True:
            got = await tab.expect(lambda f: True, within=5)
            if got == {"identifier": NI, "type": "confirm_subscription"}:
                break
            frames.append(got)
        assert not [f for f in frames if f.get("type") == "disconnect"], frames
        if answer == "reject_subscription":
            assert [f.get("type") for f in frames] == ["reject_subscription"], frames
        elif answer == "error":
            [error] = [json.loads(f["message"]) for f in frames]
            assert error["action"] == "error", error
            assert error["code"] in ("validation.failed", "notification.not_found"), error
        else:
            assert frames == [], frames
    finally:
        await tab.close()
    assert "Traceback" not in hub.logs()
