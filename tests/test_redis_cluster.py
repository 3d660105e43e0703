"""Redis Cluster: the hub on a real three-node cluster (`REDIS_URL=redis+cluster://…`).

The file starts its own cluster (three `redis-server --cluster-enabled yes` on free ports,
joined by `redis-cli --cluster create`), so that it can kill and restart a node. Streams go on
sharded pub/sub, each on the shard that owns its slot; the control channel on classic pub/sub;
leases and rate limits on the shard of their key. Skipped without redis-server and redis-cli
(a failure with HUB_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from redis import asyncio as aioredis
from redis.crc import key_slot

from infra.broker import Broker
from tests.conftest import scratch_postgres, service_missing
from tests.support import (
    CableClient,
    HubServer,
    api_user,
    bearer,
    cable,
    create_product,
    free_port,
    log_since,
    login,
    publish,
    register,
)
from tests.test_resilience import (  # several hubs on one database, a listener, a publisher
    Listener,
    Publisher,
    new_hub,
    wait_until,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
INVALID_REQUEST = {"type": "disconnect", "reason": "invalid_request", "reconnect": False}


class ClusterNodeProcess:
    """One cluster node this file owns; restarted on its port with its nodes.conf, it rejoins
    with the same slots."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # Chosen too: by default the bus is port + 10,000, which may be in the kernel's
        # ephemeral range and taken by some outgoing connection.
        self.bus_port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10) -> None:
        log = (self.workdir / "redis.log").open("ab")
        log_start = log.tell()
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir)),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-port", str(self.bus_port)),
                # Longer than the restart below takes: the cluster never declares the node
                # failed (a quick restart, the common case of a crash under a supervisor).
                *("--cluster-node-timeout", "5000"),
                # The README's advice: the other shards keep serving keys (leases, limits)
                # while one is down.
                *("--cluster-require-full-coverage", "no"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while b"Ready to accept connections" not in log_since(
            self.workdir / "redis.log", log_start
        ):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(
                    log_since(self.workdir / "redis.log", log_start).decode(errors="replace")
                )
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: no goodbye to its clients, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        self.kill()

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=2)


class LocalCluster:
    def __init__(self, workdir: Path) -> None:
        self.nodes = [ClusterNodeProcess(workdir / f"node{i}") for i in range(3)]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        created = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert created.returncode == 0, created.stdout + created.stderr
        self.wait_ok()

    def wait_ok(self, within: float = 20) -> None:
        """Until every node says the cluster is ok (slots assigned and agreed)."""
        deadline = time.monotonic() + within
        for node in self.nodes:
            while True:
                info = subprocess.run(
                    [REDIS_CLI, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                    check=False,
                ).stdout
                if "cluster_state:ok" in info:
                    break
                assert time.monotonic() < deadline, f"cluster not ok: {info}"
                time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    async def shard_channels(self, pattern: str) -> list[set[str]]:
        """The sharded channels matching `pattern` subscribed on each node."""
        found = []
        for node in self.nodes:
            client = node.client()
            try:
                found.append({c.decode() for c in await client.pubsub_shardchannels(pattern)})
            finally:
                await client.aclose()
        return found

    async def classic_channels(self, pattern: str) -> set[str]:
        found: set[str] = set()
        for node in self.nodes:
            client = node.client()
            try:
                found |= {c.decode() for c in await client.pubsub_channels(pattern)}
            finally:
                await client.aclose()
        return found


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    for binary in (REDIS_SERVER, REDIS_CLI):
        if not os.access(binary, os.X_OK):
            service_missing(f"{Path(binary).name} (for a local Redis Cluster)")
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# What the fan-out test spends: two sockets per user, four login attempts per account.
HUB_ENV = {"HUB_CABLE_MAX_SOCKETS_PER_USER": "2", "HUB_RATE_LOGIN_ACCOUNT": "4/minute"}


@pytest.fixture(scope="module")
def hubs(
    redis_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[HubServer, HubServer, str]]:
    """Two hub processes of one deployment on the cluster (one SQL database, one prefix) and a
    product's sk_live key, for every test here: each test makes its own users."""
    workdir = tmp_path_factory.mktemp("hubs")
    started: list[HubServer] = []
    with scratch_postgres() as url:
        database_url = url or f"sqlite:///{workdir / 'shared.db'}"
        try:
            a = new_hub(started, workdir / "a", database_url, redis_cluster.url, **HUB_ENV)
            b = new_hub(started, workdir / "b", database_url, redis_cluster.url, twin_of=a)
            a.start()  # first: A migrates the database
            sk = create_product(a)["sk_live"]
            b.start()
            yield a, b, sk
        finally:
            for hub in started:
                hub.stop()


def prefix_of(hub) -> str:
    return hub.redis_prefix


async def users_on_every_shard(
    cluster: LocalCluster, hub, http: httpx.AsyncClient, sk: str, per_shard: int = 1
) -> list[list[tuple[int, CableClient]]]:
    """Connected users until every shard holds `per_shard` of their streams: for each shard,
    its users as (user id, subscribed tab). Where a stream lives is read from the nodes."""
    pattern = f"{prefix_of(hub)}:notifications:*"
    tabs: dict[int, CableClient] = {}
    for _ in range(40):
        user_id, token = await api_user(http, sk)
        tabs[user_id] = await cable(hub.url, token)
        shards = await cluster.shard_channels(pattern)
        owners = [
            [u for u in tabs if any(c.endswith(f":{u}") for c in channels)] for channels in shards
        ]
        if all(len(users) >= per_shard for users in owners):
            assert sum(map(len, owners)) == len(tabs), owners  # each stream on one shard
            return [[(u, tabs[u]) for u in users] for users in owners]
    raise AssertionError(f"40 users and still a shard without {per_shard}: {owners}")


async def test_streams_are_sharded_across_the_cluster_and_delivered(redis_cluster, hubs):
    hub, _, sk = hubs
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        shards = await users_on_every_shard(redis_cluster, hub, http, sk)
        everyone = [pair for shard in shards for pair in shard]
        try:
            # The streams are sharded channels only; classic pub/sub carries the control
            # channel alone (the cluster bus copies classic messages to every node).
            classic = await redis_cluster.classic_channels(f"{prefix_of(hub)}:*")
            assert classic == {f"{prefix_of(hub)}:control"}
            # One request to users on all three shards: each hears its own, once.
            ids = await publish(http, sk, [user for user, _ in everyone], title="all shards")
            for (user, tab), notification_id in zip(everyone, ids, strict=True):
                got = await tab.next_message("new_notification")
                assert got["notification"]["id"] == notification_id, user
            for _, tab in everyone:
                with pytest.raises(AssertionError):
                    await tab.next_message("new_notification", within=0.2)
            assert (await http.get("/readyz")).status_code == 200
        finally:
            for _, tab in everyone:
                with contextlib.suppress(Exception):
                    await tab.close()


async def test_two_hubs_on_the_cluster_fan_out_share_leases_limits_and_revocations(
    redis_cluster, hubs
):
    a, b, sk = hubs
    tabs: list[CableClient] = []
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as http_b,
    ):
        try:
            # Fan-out both ways, for users on every shard.
            shards = await users_on_every_shard(redis_cluster, a, http_a, sk)
            on_a = [pair for shard in shards for pair in shard]
            tabs += [tab for _, tab in on_a]
            ids = await publish(http_b, sk, [user for user, _ in on_a], title="via B")
            for (_, tab), notification_id in zip(on_a, ids, strict=True):
                got = await tab.next_message("new_notification")
                assert got["notification"]["id"] == notification_id
            on_b_user, on_b_token = await api_user(http_a, sk)
            on_b = await cable(b.url, on_b_token)
            tabs.append(on_b)
            [via_a] = await publish(http_a, sk, on_b_user, title="via A")
            assert (await on_b.next_message("new_notification"))["notification"]["id"] == via_a

            # Leases (a sorted set per user, on its shard): two sockets of a user across both
            # processes, and the third is refused on either.
            tabs.append(await cable(a.url, on_b_token))
            for hub in (a, b):
                extra = await CableClient.connect(hub.url, on_b_token)
                assert await extra.recv() == INVALID_REQUEST

            # Revocation rides the control channel: a logout through B ends the socket on A.
            email = f"user-{uuid.uuid4().hex[:12]}@example.com"
            tokens = await register(http_b, email)
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

            # Rate limits are one budget in the cluster: the registration (through B) and
            # three wrong passwords spread over both processes spend the account's four, the
            # next attempt is refused on either (each process alone has counted two).
            for http in (http_a, http_b, http_a):
                assert (await login(http, email, "wrong-password")).status_code == 401
            for http in (http_b, http_a):
                assert (await login(http, email, "wrong-password")).status_code == 429
        finally:
            for tab in tabs:
                with contextlib.suppress(Exception):
                    await tab.close()


async def test_a_node_restart_mid_stream_loses_nothing(redis_cluster, hubs):
    hub, _, sk = hubs
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        shards = await users_on_every_shard(redis_cluster, hub, http, sk)
        # The killed node holds A's stream; B's stream is on another shard.
        doomed = next(i for i, shard in enumerate(shards) if shard)
        [(user_a, tab_a), *_] = shards[doomed]
        [(user_b, tab_b), *_] = shards[(doomed + 1) % 3]
        for shard in shards:
            for _, tab in shard:
                if tab not in (tab_a, tab_b):
                    await tab.close()
        listener_a, listener_b = Listener(tab_a.ws), Listener(tab_b.ws)
        publisher_a = Publisher(http, sk, user_a, interval=0.06, limit=60)
        publisher_b = Publisher(http, sk, user_b, interval=0.06, limit=60)
        node = redis_cluster.nodes[doomed]
        try:
            await publisher_a.publish_more(20, within=20)
            mark = len(hub.logs())
            node.kill()
            killed_at = len(publisher_b.ids)
            # While A's shard is down, B's stream goes on being delivered live.
            await publisher_b.publish_more(10, within=10)
            during = publisher_b.ids[killed_at:]
            await wait_until(lambda: listener_b.got_all(during), 2, "B's stream during the outage")
            assert node.process.poll() is not None, "the node came back too early"
            await asyncio.to_thread(node.start)
            await asyncio.wait_for(publisher_a.finished(), 30)
            await asyncio.wait_for(publisher_b.finished(), 30)
            # SQL is the source of truth: publishing went on (201) during the outage.
            for publisher in (publisher_a, publisher_b):
                assert publisher.statuses == [201] * 60, Counter(publisher.statuses)
            # A's gap is recovered from SQL once its shard is back: everything, once.
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: listener_a.got_all(publisher_a.ids), 10, "A's stream")
            await asyncio.sleep(0.5)  # late duplicates would arrive now
            listener_a.assert_exactly_once(publisher_a.ids)
            listener_b.assert_exactly_once(publisher_b.ids)
            for listener in (listener_a, listener_b):
                assert listener.disconnects == [] and not listener.closed.is_set()
            log = hub.logs()[mark:]
            assert f"redis shard 127.0.0.1:{node.port} reconnected" in log
            # Few recoveries (the shard's reconnect, one publish-gap notice, the control
            # connection's move if it was on that node), not one per failed publish.
            assert log.count("streams from SQL after a broker gap") <= 3, log
        finally:
            await publisher_a.stop()
            await publisher_b.stop()
            await listener_a.stop()
            await listener_b.stop()
            if node.process is None or node.process.poll() is not None:
                await asyncio.to_thread(node.start)
            await asyncio.to_thread(redis_cluster.wait_ok)


async def move_slot(cluster: LocalCluster, slot: int, source: int, target: int) -> None:
    """Reshard one (keyless) slot from node `source` to node `target`, as `redis-cli --cluster
    reshard` does: importing, migrating, then the new owner on both."""
    src, dst = cluster.nodes[source].client(), cluster.nodes[target].client()
    try:
        src_id = (await src.execute_command("CLUSTER", "MYID")).decode()
        dst_id = (await dst.execute_command("CLUSTER", "MYID")).decode()
        await dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        await src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        assert await src.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
        await dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        await src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
    finally:
        await src.aclose()
        await dst.aclose()


async def test_a_stream_whose_slot_moves_follows_it_to_the_new_shard(redis_cluster, hubs):
    hub, _, sk = hubs
    pattern = f"{prefix_of(hub)}:notifications:*"
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user_id, token = await api_user(http, sk)
        listener = Listener((await cable(hub.url, token)).ws)
        try:
            [first] = await publish(http, sk, user_id)
            await wait_until(lambda: listener.got_all([first]), 5, "the first notification")
            [source] = [
                i for i, found in enumerate(await redis_cluster.shard_channels(pattern)) if found
            ]
            [channel] = (await redis_cluster.shard_channels(pattern))[source]
            target = (source + 1) % 3
            await move_slot(redis_cluster, key_slot(channel.encode()), source, target)
            # Published right after the move: the hub's slot map is stale, the shard answers
            # MOVED, and what it could not publish is recovered from SQL.
            after = [(await publish(http, sk, user_id, title=f"moved {i}"))[0] for i in range(5)]

            async def on_target() -> bool:
                shards = await redis_cluster.shard_channels(pattern)
                return shards[target] == {channel} and not shards[source]

            deadline = time.monotonic() + 10
            while not await on_target():
                assert time.monotonic() < deadline, "the stream never moved to its new shard"
                await asyncio.sleep(0.05)
            [last] = await publish(http, sk, user_id, title="on the new shard")
            with contextlib.suppress(AssertionError):
                await wait_until(lambda: listener.got_all([*after, last]), 10, "everything")
            await asyncio.sleep(0.5)  # late duplicates would arrive now
            listener.assert_exactly_once([first, *after, last])
            assert listener.disconnects == [] and not listener.closed.is_set()
        finally:
            await listener.stop()


async def test_a_dropped_shard_connection_is_a_gap_recovered_from_sql(redis_cluster, hubs):
    """The shard stays up but drops the hub's subscribing connection (CLIENT KILL, as an idle
    timeout or a proxy would). redis-py's pub/sub would reconnect and resubscribe by itself,
    and what was published meanwhile would be lost unseen: the hub must see the drop as a
    gap and recover it from SQL."""
    hub, _, sk = hubs
    pattern = f"{prefix_of(hub)}:notifications:*"
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user_id, token = await api_user(http, sk)
        listener = Listener((await cable(hub.url, token)).ws)
        try:
            [first] = await publish(http, sk, user_id)
            await wait_until(lambda: listener.got_all([first]), 5, "the first notification")
            shards = await redis_cluster.shard_channels(pattern)
            node = redis_cluster.nodes[next(i for i, found in enumerate(shards) if found)]
            mark = len(hub.logs())
            client = node.client()
            try:
                assert await client.client_kill_filter(_type="pubsub") >= 1
            finally:
                await client.aclose()
            await wait_until(
                lambda: "streams from SQL after a broker gap" in hub.logs()[mark:],
                10,
                "a gap recovery",
            )
            assert f"redis shard 127.0.0.1:{node.port} reconnected" in hub.logs()[mark:]
            [after] = await publish(http, sk, user_id)
            await wait_until(lambda: listener.got_all([after]), 5, "a notification after")
            listener.assert_exactly_once([first, after])

            # The tab leaves (the shard connection keeps no channel of ours), the connection
            # drops and comes back empty; the tab returns, and the shard serves it again.
            await listener.stop()
            await wait_until_async(
                lambda: no_channels_on(redis_cluster, pattern), 10, "the stream to leave"
            )
            mark = len(hub.logs())
            client = node.client()
            try:
                assert await client.client_kill_filter(_type="normal") >= 1
            finally:
                await client.aclose()
            await wait_until(
                lambda: f"shard 127.0.0.1:{node.port} reconnected" in hub.logs()[mark:],
                10,
                "the empty shard connection to come back",
            )
            listener = Listener((await cable(hub.url, token)).ws)
            [back] = await publish(http, sk, user_id)
            await wait_until(lambda: listener.got_all([back]), 5, "a notification to the tab")
        finally:
            await listener.stop()


async def test_a_stream_on_a_shard_new_to_the_process_is_a_gap(redis_cluster):
    """The first stream a process puts on a shard waits for the connection to that shard,
    and the tab was told it is subscribed: what is published meanwhile is missed live, so
    that first connection is a gap to recover, like a reconnect. (A hub once confirmed a tab
    on hub B whose notification, published at once through hub A, never came.)"""
    broker = Broker(redis_cluster.url, prefix=f"gap-{uuid.uuid4().hex[:8]}")
    gaps: list[float] = []

    async def on_gap(since: float) -> None:
        gaps.append(since)

    broker.listen(lambda channel, message: None, on_gap)
    await broker.start()
    try:
        subscribed_at = time.time()
        await broker.subscribe("notifications:1:live:1")  # no shard connection of ours yet
        await wait_until(lambda: gaps, 10, "a gap for the new shard")
        assert len(gaps) == 1 and gaps[0] <= subscribed_at
    finally:
        await broker.stop()


async def no_channels_on(cluster: LocalCluster, pattern: str) -> bool:
    return not any(await cluster.shard_channels(pattern))


async def wait_until_async(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, f"timed out after {within}s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://127.0.0.1", "'127.0.0.1' is not host:port"),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2", "'10.0.0.2' is not host:port"),
        ("redis+cluster://10.0.0.1:70000", "'10.0.0.1:70000' is not host:port"),
        ("redis+cluster://10.0.0.1:7000/2", "only database 0"),
        ("redis-cluster://10.0.0.1:7000", "must be a redis://, rediss://, unix:// or"),
        ("10.0.0.1:6379", "must be a redis://, rediss://, unix:// or"),
    ],
)
def test_a_malformed_redis_url_is_refused_in_one_line(url, says):
    from infra.settings import Settings, SettingsError

    with pytest.raises(SettingsError, match="REDIS_URL") as refused:
        Settings.from_env({"REDIS_URL": url})
    assert says in str(refused.value) and "\n" not in str(refused.value)
    good = "redis+cluster://user:p%40ss@10.0.0.1:7000,[::1]:7001/0"
    assert Settings.from_env({"REDIS_URL": good}).redis_url == good
