"""Resilience: several hub processes on one Redis, Redis restarts, killed hubs, slow readers.

Every test starts its own hub processes (and, for the Redis restarts, its own redis-server) so
that it can kill them. The hubs of one test share one SQL database: a scratch PostgreSQL
database when `DATABASE_URL` names one, otherwise a SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import string
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from redis import asyncio as aioredis

from tests.conftest import scratch_postgres, service_missing
from tests.support import (
    HubServer,
    api_user,
    bearer,
    cable,
    create_product,
    free_port,
    log_since,
    publish,
    register,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """One SQL database for all the hubs of a test: scratch PostgreSQL, else a SQLite file."""
    with scratch_postgres() as url:
        yield url or f"sqlite:///{tmp_path / 'shared.db'}"


@pytest.fixture
def processes(database_url: str) -> Iterator[list]:
    """Hubs and redis-servers a test starts; all stopped at teardown, before the database
    is dropped, whatever the test did."""
    started: list = []
    yield started
    for process in reversed(started):
        with contextlib.suppress(Exception):
            process.stop()


@pytest.fixture
def shared_redis(redis_url: str | None) -> str:
    """The suite's Redis (`REDIS_URL`); skipped without it (a failure in CI)."""
    if redis_url is None:
        service_missing("Redis (REDIS_URL)")
    import redis

    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing(f"Redis at {redis_url} ({exc})")
    return redis_url


# -- helpers --------------------------------------------------------------------------------


class RedisProcess:
    """A redis-server this test owns, so that it can kill it and restart it on the same port."""

    def __init__(self, workdir: Path) -> None:
        if not os.access(REDIS_SERVER, os.X_OK):
            service_missing(f"redis-server ({REDIS_SERVER})")
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> None:
        log = (self.workdir / "redis.log").open("ab")
        log_start = log.tell()
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.workdir / "redis.log").read_text())
            # A PONG alone could come from another server on the same port.
            if b"Ready to accept connections" not in log_since(
                self.workdir / "redis.log", log_start
            ):
                time.sleep(0.02)
                continue
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: no goodbye to its clients, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def new_hub(
    processes: list,
    workdir: Path,
    database_url: str,
    redis_url: str | None,
    *,
    twin_of: HubServer | None = None,
    **env: str,
) -> HubServer:
    """A hub (not started yet). `twin_of`: another process of that hub's deployment (its
    `twin`: the same database, Redis, prefix, signing key and settings as it)."""
    workdir.mkdir(parents=True)
    if twin_of is not None:
        hub = twin_of.twin(workdir)
    else:
        hub = HubServer(
            workdir=workdir, database_url=database_url, redis_url=redis_url, extra_env=dict(env)
        )
    processes.append(hub)
    return hub


async def start_pair(a: HubServer, b: HubServer) -> str:
    """Start A, then B alongside creating a product through A; the product's live secret key."""
    await asyncio.to_thread(a.start)  # first: A migrates the shared database
    keys, _ = await asyncio.gather(asyncio.to_thread(create_product, a), asyncio.to_thread(b.start))
    return keys["sk_live"]


async def wait_until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.02)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class Listener:
    """Reads a cable socket in the background and sorts what it hears."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.notification_ids: list[int] = []
        self.disconnects: list[dict] = []
        self.closed = asyncio.Event()
        self.error: BaseException | None = None
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                frame = json.loads(raw)
                if frame.get("type") == "disconnect":
                    self.disconnects.append(frame)
                elif "identifier" in frame and "message" in frame:
                    message = json.loads(frame["message"])
                    if message.get("action") == "new_notification":
                        self.notification_ids.append(message["notification"]["id"])
        except websockets.ConnectionClosed:
            pass
        except Exception as exc:  # a frame the hub should not have sent
            self.error = exc
        finally:
            self.closed.set()

    def got_all(self, ids: list[int]) -> bool:
        return set(self.notification_ids) >= set(ids)

    def assert_exactly_once(self, ids: list[int]) -> None:
        assert self.error is None, f"unreadable frame: {self.error!r}"
        counts = Counter(self.notification_ids)
        assert not {i: n for i, n in counts.items() if n > 1}, f"duplicates: {counts}"
        assert sorted(self.notification_ids) == sorted(ids), (
            f"missing {sorted(set(ids) - set(counts))}, unexpected {sorted(set(counts) - set(ids))}"
        )

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(Exception):
            await self.ws.close()


class Publisher:
    """Publishes one notification to `user_id` every `interval` seconds through the HTTP API,
    in the background, until stopped (or `limit`); remembers the ids and the statuses."""

    def __init__(
        self, http: httpx.AsyncClient, sk: str, user_id: int, interval: float, limit: int
    ) -> None:
        self.http, self.sk, self.user_id = http, sk, user_id
        self.interval, self.limit = interval, limit
        self.ids: list[int] = []
        self.statuses: list[int] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for i in range(self.limit):
            if self._stop.is_set():
                return
            response = await self.http.post(
                "/api/v1/notifications",
                headers=bearer(self.sk),
                json={"user_id": self.user_id, "title": f"n{i}"},
            )
            self.statuses.append(response.status_code)
            if response.status_code == 201:
                self.ids.extend(n["id"] for n in response.json()["notifications"])
            await asyncio.sleep(self.interval)

    async def publish_more(self, count: int, within: float) -> None:
        target = len(self.statuses) + count
        await wait_until(lambda: len(self.statuses) >= target, within, f"{count} more publishes")

    async def finished(self) -> None:
        await self._task

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, 60)


# -- 1. two hub processes on one Redis ------------------------------------------------------


async def test_two_hubs_on_one_redis_deliver_across_each_other(
    tmp_path, database_url, processes, shared_redis
):
    a = new_hub(processes, tmp_path / "a", database_url, shared_redis)
    b = new_hub(processes, tmp_path / "b", database_url, shared_redis, twin_of=a)
    sk = await start_pair(a, b)
    tabs = []
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as http_b,
    ):
        try:
            on_a_user, on_a_token = await api_user(http_b, sk)  # made through B, used on A
            on_b_user, on_b_token = await api_user(http_a, sk)
            on_a, on_b = await cable(a.url, on_a_token), await cable(b.url, on_b_token)
            tabs += [on_a, on_b]

            [via_b] = await publish(http_b, sk, on_a_user, title="via B")
            got = await on_a.next_message("new_notification")
            assert (got["notification"]["id"], got["notification"]["title"]) == (via_b, "via B")
            [via_a] = await publish(http_a, sk, on_b_user, title="via A")
            got = await on_b.next_message("new_notification")
            assert (got["notification"]["id"], got["notification"]["title"]) == (via_a, "via A")
            # Once: neither hub hands the other's message out a second time.
            for tab in (on_a, on_b):
                with pytest.raises(AssertionError):
                    await tab.next_message("new_notification", within=0.3)

            # A read through B reaches the tab on A: read state rides the same bus.
            read = await http_b.post(
                f"/api/v1/notifications/{via_b}/read", headers=bearer(on_a_token)
            )
            assert read.status_code == 200, read.text
            assert await on_a.next_message("notification_read") == {
                "action": "notification_read",
                "id": via_b,
                "unread_count": 0,
            }

            # A logout through B drops the session's socket on A within a second (long before
            # the 30 s session sweep could): the revocation crossed Redis.
            tokens = await register(http_b, f"user-{uuid.uuid4().hex[:12]}@example.com")
            doomed = await cable(a.url, tokens["access_token"])
            tabs.append(doomed)
            logout = await http_b.post(
                "/api/v1/auth/logout", headers=bearer(tokens["access_token"])
            )
            assert logout.status_code == 204
            frame = await doomed.expect(lambda f: f.get("type") == "disconnect", within=1.0)
            assert frame == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
            with pytest.raises(websockets.ConnectionClosed):
                await doomed.recv(within=3)
            # The other tabs live on.
            [after] = await publish(http_b, sk, on_a_user)
            assert (await on_a.next_message("new_notification"))["notification"]["id"] == after
        finally:
            for tab in tabs:
                with contextlib.suppress(Exception):
                    await tab.close()


async def hub_on_own_redis(
    tmp_path: Path, database_url: str, processes: list
) -> tuple[RedisProcess, HubServer, str]:
    """A test-owned redis-server, a hub on it, and a new product's sk_live key."""
    redis_server = RedisProcess(tmp_path / "redis")
    processes.append(redis_server)
    redis_server.start()
    hub = new_hub(processes, tmp_path / "hub", database_url, redis_server.url)
    await asyncio.to_thread(hub.start)
    sk = (await asyncio.to_thread(create_product, hub))["sk_live"]
    return redis_server, hub, sk


# -- 2. Redis restarted mid-stream ----------------------------------------------------------


async def test_redis_restart_mid_stream_loses_nothing(tmp_path, database_url, processes):
    # Before e9259f0 (a pub/sub reconnect never triggered gap recovery) this lost every
    # notification published between the kill and the hub's resubscription in 7 of 8 runs;
    # the next test shows that case deterministically.
    redis_server, hub, sk = await hub_on_own_redis(tmp_path, database_url, processes)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user_id, token = await api_user(http, sk)
        listener = Listener((await cable(hub.url, token)).ws)
        # 60 notifications over ~4.5 s; Redis is SIGKILLed after the 20th and comes back on
        # the same port 1.5 s later, while the stream goes on.
        publisher = Publisher(http, sk, user_id, interval=0.06, limit=60)
        try:
            await publisher.publish_more(20, within=20)
            redis_server.stop()
            during = len(publisher.statuses)
            await asyncio.sleep(1.5)
            await asyncio.to_thread(redis_server.start)
            assert len(publisher.statuses) > during, "nothing was published during the outage"
            await asyncio.wait_for(publisher.finished(), 30)
            # SQL is the source of truth: publishing went on (201) during the outage.
            assert publisher.statuses == [201] * 60, Counter(publisher.statuses)
            # Every notification reaches the socket that stayed connected, once, soon after.
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: listener.got_all(publisher.ids), 10, "all notifications")
            await asyncio.sleep(0.5)  # late duplicates would arrive now
            listener.assert_exactly_once(publisher.ids)
            # The socket itself never noticed the outage.
            assert listener.disconnects == []
            assert not listener.closed.is_set()
            # Ready again. (Not necessarily at the first probe: the first PING after the
            # restart may go out on a pooled connection Redis closed, and answer 503 once.)
            codes = [(await http.get("/readyz")).status_code for _ in range(3)]
            assert 200 in codes, codes
        finally:
            await publisher.stop()
            await listener.stop()


async def test_after_a_redis_outage_the_hub_recovers_the_gap_by_itself(
    tmp_path, database_url, processes
):
    """Notifications published while Redis is down reach the connected client once Redis is
    back, without waiting for anyone to publish again (the README's "re-reads from SQL what
    was published in the gap"). Failed every run before e9259f0."""
    redis_server, hub, sk = await hub_on_own_redis(tmp_path, database_url, processes)
    streams = f"{hub.redis_prefix}:notifications:*"
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user_id, token = await api_user(http, sk)
        listener = Listener((await cable(hub.url, token)).ws)
        try:
            [before] = await publish(http, sk, user_id)
            await wait_until(lambda: listener.got_all([before]), 5, "the first notification")
            redis_server.stop()
            missed = [(await publish(http, sk, user_id, title=f"gap {i}"))[0] for i in range(3)]
            await asyncio.to_thread(redis_server.start)
            probe = aioredis.Redis.from_url(redis_server.url)
            try:

                async def resubscribed() -> bool:
                    return bool(await probe.pubsub_channels(streams))

                deadline = time.monotonic() + 15
                while not await resubscribed():
                    assert time.monotonic() < deadline, "the hub never resubscribed"
                    await asyncio.sleep(0.05)
            finally:
                await probe.aclose()
            # Nothing is published from here on: only the hub's own recovery can deliver.
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: listener.got_all(missed), 8, "the gap's notifications")
            listener.assert_exactly_once([before, *missed])
            assert listener.disconnects == [] and not listener.closed.is_set()
        finally:
            await listener.stop()


async def test_after_a_redis_restart_the_first_readiness_probe_is_ready(
    tmp_path, database_url, processes
):
    """A pooled Redis connection the restarted server closed used to fail the first command
    sent on it: one false 503 from /readyz per process (a load balancer then pulls it)."""
    redis_server, hub, _ = await hub_on_own_redis(tmp_path, database_url, processes)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        assert (await http.get("/readyz")).status_code == 200
        redis_server.stop()
        await asyncio.to_thread(redis_server.start)
        deadline = time.monotonic() + 15
        while "redis pub/sub reconnected" not in hub.logs():
            assert time.monotonic() < deadline, "the hub never reconnected"
            await asyncio.sleep(0.05)
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text


# -- 3. a killed hub process ----------------------------------------------------------------


async def test_client_of_a_killed_hub_reconnects_and_syncs_what_it_missed(
    tmp_path, database_url, processes, shared_redis
):
    a = new_hub(processes, tmp_path / "a", database_url, shared_redis)
    b = new_hub(processes, tmp_path / "b", database_url, shared_redis, twin_of=a)
    sk = await start_pair(a, b)
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http_b:
        user_id, token = await api_user(http_b, sk)
        tab = await cable(a.url, token)
        [n1] = await publish(http_b, sk, user_id)
        assert (await tab.next_message("new_notification"))["notification"]["id"] == n1

        a.process.kill()  # SIGKILL: no server_restart frame, no goodbye
        a.process.wait(10)
        with pytest.raises(websockets.ConnectionClosed):
            await tab.expect(lambda f: True, within=5)
        missed = [(await publish(http_b, sk, user_id, title=f"n{i}"))[0] for i in (2, 3, 4)]

        async def reconnect_and_sync(url: str) -> dict:
            again = await cable(url, token)
            try:
                await again.perform("sync", since=n1)
                return await again.next_message("sync")
            finally:
                await again.close()

        on_b = await reconnect_and_sync(b.url)
        assert [n["id"] for n in on_b["notifications"]] == missed
        assert [n["title"] for n in on_b["notifications"]] == ["n2", "n3", "n4"]
        assert (on_b["has_more"], on_b["unread_count"]) == (False, 4)

        # A restarted on its old port serves the same client the same way, and is back on the
        # bus: a notification published through B reaches it live.
        await asyncio.to_thread(a.start)
        on_a = await reconnect_and_sync(a.url)
        assert [n["id"] for n in on_a["notifications"]] == missed
        assert on_a["unread_count"] == 4
        back = await cable(a.url, token)
        try:
            [n5] = await publish(http_b, sk, user_id)
            live = await back.next_message("new_notification")
            assert (live["notification"]["id"], live["unread_count"]) == (n5, 5)
        finally:
            await back.close()


# -- 4. a slow reader -----------------------------------------------------------------------

SLOW_IDENTIFIERS = 64  # subscriptions of the slow socket to its own stream (see below)
SLOW_NOTIFICATIONS = 400
MESSAGE_CHARS = 4000


async def paused_socket(hub: HubServer, token: str, identifiers: list[str]):
    """A cable socket with a small receive buffer, subscribed, whose reading is then paused:
    a client that has stopped reading (a frozen tab, a stalled mobile link)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A fixed small receive buffer (no autotuning up to tcp_rmem's 32 MB), so that the
    # kernel stops absorbing the backlog early.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect(("127.0.0.1", hub.port))
    sock.setblocking(False)
    ws = await websockets.connect(
        hub.url.replace("http://", "ws://") + f"/cable?token={token}",
        sock=sock,
        subprotocols=["actioncable-v1-json"],
        compression=None,  # the backlog must cost real bytes
        ping_interval=None,  # a paused reader cannot answer its own pings
        max_size=None,
    )
    assert json.loads(await ws.recv()) == {"type": "welcome"}
    for identifier in identifiers:
        await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
    confirmed = set()
    while len(confirmed) < len(identifiers):
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if frame.get("type") == "confirm_subscription":
            confirmed.add(frame["identifier"])
    ws.transport.pause_reading()
    return ws


async def test_slow_reader_is_cut_off_with_too_slow_and_memory_stays_flat(
    tmp_path, database_url, processes
):
    # 64 subscriptions on one socket: over the default limit of 32, allowed here.
    hub = new_hub(
        processes,
        tmp_path / "hub",
        database_url,
        None,
        HUB_LOG_LEVEL="info",
        HUB_CABLE_MAX_SUBSCRIPTIONS=str(SLOW_IDENTIFIERS),
    )
    await asyncio.to_thread(hub.start)
    sk = (await asyncio.to_thread(create_product, hub))["sk_live"]
    rng = random.Random(4)
    alphabet = string.ascii_letters + string.digits

    def big() -> str:  # incompressible-ish and free of JSON escapes
        return "".join(rng.choices(alphabet, k=MESSAGE_CHARS))

    async with httpx.AsyncClient(base_url=hub.url, timeout=60) as http:
        slow_user, slow_token = await api_user(http, sk)
        normal_user, normal_token = await api_user(http, sk)
        normal = Listener((await cable(hub.url, normal_token)).ws)
        # The slow socket subscribes to its stream under 64 identifiers (as a page with 64
        # widgets would): each notification is then 64 frames of ~4.5 KB on that one socket,
        # so the backlog it is offered (400 × 64 × 4.5 KB ≈ 115 MB) dwarfs what the hub may
        # keep for it, and a few hundred publishes are enough to show that.
        identifiers = [
            json.dumps({"channel": "NotificationsChannel", "widget": i})
            for i in range(SLOW_IDENTIFIERS)
        ]
        slow = await paused_socket(hub, slow_token, identifiers)
        try:
            normal_ids: list[int] = []

            async def to_normal() -> None:
                normal_ids.extend(await publish(http, sk, normal_user, message=big()))

            async def to_slow() -> None:
                await publish(http, sk, slow_user, message=big())

            # Warm up the hub's allocator and caches with the same kind of traffic.
            for _ in range(3):
                await asyncio.gather(*(to_normal() for _ in range(8)))
            await wait_until(lambda: normal.got_all(normal_ids), 10, "the warm-up notifications")
            rss_before = rss_kib(hub.process.pid)

            jobs: list[Callable[[], Awaitable]] = []
            for i in range(SLOW_NOTIFICATIONS):
                jobs.append(to_slow)
                if i % 20 == 0:
                    jobs.append(to_normal)
            gate = asyncio.Semaphore(8)

            async def run(job: Callable[[], Awaitable]) -> None:
                async with gate:
                    await job()

            started = time.monotonic()
            await asyncio.gather(*(run(job) for job in jobs))
            flood_seconds = time.monotonic() - started
            rss_after = rss_kib(hub.process.pid)

            # The other user's socket on the same hub kept receiving throughout.
            await wait_until(lambda: normal.got_all(normal_ids), 10, "the normal client's ids")
            normal.assert_exactly_once(normal_ids)
            assert normal.disconnects == []

            # Memory stays flat. The hub may keep for the stuck socket at most its queue (256
            # frames ≈ 1.2 MB) plus the transport's write buffer (≈ 64 KB + one frame); the
            # kernel's socket buffers are not in RSS. An unbounded queue would have grown by
            # the whole ≈ 115 MB offered. 50 MB leaves room for allocator noise from ~420
            # requests and their SQL while staying far below that.
            growth_mib = (rss_after - rss_before) / 1024
            assert growth_mib < 50, (
                f"hub RSS grew {growth_mib:.1f} MiB ({rss_before} → {rss_after} KiB) "
                f"in a {flood_seconds:.1f} s flood"
            )

            # Once the client reads again it gets what was already on the wire, then the
            # verdict, then the close.
            slow.transport.resume_reading()
            frames_before_verdict = 0
            verdict = None
            deadline = time.monotonic() + 30
            while verdict is None:
                assert time.monotonic() < deadline, "no disconnect frame"
                frame = json.loads(await asyncio.wait_for(slow.recv(), 10))
                if frame.get("type") == "disconnect":
                    verdict = frame
                elif "message" in frame and "identifier" in frame:
                    frames_before_verdict += 1
            assert verdict == {"type": "disconnect", "reason": "too_slow", "reconnect": True}
            # Only what the buffers held came before it, a small part of the 25,600 frames.
            assert frames_before_verdict < SLOW_NOTIFICATIONS * SLOW_IDENTIFIERS // 4
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(slow.recv(), 10)

            # The cut-off client reconnects (reconnect: true) and is served again.
            back = await cable(hub.url, slow_token)
            try:
                [fresh] = await publish(http, sk, slow_user)
                got = await back.next_message("new_notification", within=5)
                assert got["notification"]["id"] == fresh
            finally:
                await back.close()
        finally:
            with contextlib.suppress(Exception):
                slow.transport.abort()
            await normal.stop()
    assert "Traceback" not in hub.logs()
