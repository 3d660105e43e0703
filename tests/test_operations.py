"""Operations: /metrics in Prometheus' format, counting what happened; /readyz naming the
failing part (SQL, the schema version, the broker)."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from infra.i18n import translate
from tests.conftest import service_missing
from tests.support import (
    HubServer,
    api_user,
    bearer,
    cable,
    create_product,
    free_port,
    production_hub,
    publish,
)


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample (`name{labels}`) in a Prometheus exposition."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    found = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in the metrics"
    return float(found.group(1))


async def test_metrics_count_connections_deliveries_and_failures(hub, client):
    product = create_product(hub)
    before = (await client.get("/metrics")).text
    user_id, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    await publish(client, product["sk_live"], user_id, title="counted")
    await tab.next_message("new_notification")
    refused = await client.get("/api/v1/keys", headers=bearer("sk_live_" + "x" * 43))
    assert refused.status_code == 401

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = response.text
    assert metric(after, "hub_cable_connections") >= 1
    assert metric(after, "hub_cable_subscriptions") >= 1
    for name in ("hub_notifications_sent_total", "hub_cable_frames_sent_total"):
        assert metric(after, name) >= metric(before, name) + 1, name
    delivered = "hub_publish_to_send_seconds_count"
    assert metric(after, delivered) >= metric(before, delivered) + 1
    failures = 'code="auth.unauthorized"'
    old = metric(before, "hub_auth_failures_total", failures) if failures in before else 0
    assert metric(after, "hub_auth_failures_total", failures) >= old + 1
    assert metric(after, "process_resident_memory_bytes") > 0
    await tab.close()


async def test_metrics_token_guards_the_endpoint(tmp_path):
    server = HubServer(workdir=tmp_path, extra_env={"HUB_METRICS_TOKEN": "scrape-secret-123"})
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/metrics")).status_code == 401
            wrong = await client.get("/metrics", headers=bearer("scrape-secret-124"))
            assert wrong.status_code == 401
            ok = await client.get("/metrics", headers=bearer("scrape-secret-123"))
            assert ok.status_code == 200 and "hub_cable_connections" in ok.text
    finally:
        server.stop()


@pytest.mark.redis
async def test_readyz_names_the_failing_part(tmp_path):
    # A Redis URL nobody listens on: SQL is fine, the broker is not. The start-up says it
    # waits for Redis, then starts without it (the broker keeps reconnecting).
    server = HubServer(workdir=tmp_path, redis_url="redis://:Canary-Redis-Pass@127.0.0.1:1/0")
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/healthz")).status_code == 200
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["failing"] == ["broker"]
            assert ready.json()["error"]["code"] == "server.unavailable"
        logs = server.logs()
        where = "Redis at redis://:[REDACTED]@127.0.0.1:1/0"
        assert f"waiting up to 5 s for {where} (" in logs
        assert f"{where} does not answer (" in logs and "starting without it" in logs
        assert "Canary-Redis-Pass" not in logs
    finally:
        server.stop()


@pytest.fixture
def own_redis() -> Iterator[tuple[str, subprocess.Popen]]:
    """A redis-server of the test's own (its URL and process), to freeze with SIGSTOP."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        service_missing("redis-server (for a Redis of the test's own)")
    port = free_port()
    process = subprocess.Popen(
        [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.send_signal(signal.SIGCONT)
        process.terminate()
        process.wait(10)


@pytest.mark.redis
async def test_readyz_answers_503_within_seconds_while_redis_hangs(tmp_path, own_redis):
    """A Redis that stops answering without closing its connections (a frozen process, a
    network that drops packets): the probe must still answer quickly, or the orchestrator's
    own timeout decides instead. It once took 15 s."""
    redis_url, redis = own_redis
    server = HubServer(workdir=tmp_path, redis_url=redis_url)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            assert (await client.get("/readyz")).status_code == 200
            redis.send_signal(signal.SIGSTOP)
            # A probe that gives up after 5 s, as orchestrators' do (READY_PROBE_SECONDS is 2).
            ready = await client.get("/readyz", timeout=5)
            assert ready.status_code == 503 and ready.json()["failing"] == ["broker"]
            redis.send_signal(signal.SIGCONT)
            assert (await client.get("/readyz")).status_code == 200
    finally:
        server.stop()


@pytest.mark.redis
async def test_a_notification_published_while_redis_hangs_is_answered_and_delivered_once(
    tmp_path, own_redis
):
    """Redis frozen: the publish gives up after its timeouts and the request is answered 201
    (the notification is stored); once Redis answers again, the open socket gets it, and the
    next one, each once. (The publish once took 25 s, and the notification it carried never
    reached the socket: its recovery began after it had been stored.)"""
    redis_url, redis = own_redis
    server = HubServer(workdir=tmp_path, redis_url=redis_url)
    server.start()
    try:
        sk = create_product(server)["sk_live"]
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            user_id, token = await api_user(client, sk)
            tab = await cable(server.url, token)
            [before] = await publish(client, sk, user_id, title="before")
            assert (await tab.next_message("new_notification"))["notification"]["id"] == before
            redis.send_signal(signal.SIGSTOP)
            # Stored and answered while Redis hangs (within a client's patience).
            [during] = await asyncio.wait_for(publish(client, sk, user_id, title="during"), 15)
            redis.send_signal(signal.SIGCONT)
            [after] = await publish(client, sk, user_id, title="after")
            heard = [
                (await tab.next_message("new_notification", within=15))["notification"]["id"]
                for _ in range(2)
            ]
            assert sorted(heard) == [during, after]
            with pytest.raises(AssertionError):  # nothing twice
                await tab.next_message("new_notification", within=1)
            await tab.close()
    finally:
        server.stop()


async def test_readyz_reports_a_database_not_at_the_newest_schema(tmp_path):
    """Production never migrates by itself: a database behind (or without) the schema this
    hub needs is not ready, whatever else answers."""
    with production_hub(tmp_path) as server:
        db = sqlite3.connect(tmp_path / "hub.db", isolation_level=None)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/readyz")).json() == {"status": "ok"}
            head = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
            db.execute("INSERT INTO alembic_version VALUES ('0004')")  # two rows: which is it?
            doubled = await client.get("/readyz")
            assert (doubled.status_code, doubled.json()["failing"]) == (503, ["schema"])
            db.execute("DELETE FROM alembic_version WHERE version_num = '0004'")
            db.execute("UPDATE alembic_version SET version_num = '0004'")  # downgraded
            behind = await client.get("/readyz", headers={"Accept-Language": "de"})
            assert behind.status_code == 503
            assert behind.json()["failing"] == ["schema"]
            assert behind.json()["error"] == {
                "code": "server.unavailable",
                "message": translate("server.unavailable", "de"),
            }
            db.execute("DROP TABLE alembic_version")  # no schema version at all
            missing = await client.get("/readyz")
            assert (missing.status_code, missing.json()["failing"]) == (503, ["schema"])
            db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            db.execute("INSERT INTO alembic_version VALUES (?)", (head,))
            assert (await client.get("/readyz")).status_code == 200
        db.close()


@pytest.mark.postgres
async def test_readyz_answers_in_time_while_the_schema_table_is_locked(tmp_path, postgres_url):
    """A migration holding alembic_version locked made /readyz wait for the statement timeout
    (30 s): the probe is bounded, and names the part that did not answer."""
    import asyncio
    import time

    import asyncpg

    with production_hub(tmp_path, postgres_url) as server:
        locker = await asyncpg.connect(postgres_url)
        try:
            async with locker.transaction():
                await locker.execute("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE")
                async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
                    started = time.monotonic()
                    ready = await client.get("/readyz")
                    assert time.monotonic() - started < 5
                    assert (ready.status_code, ready.json()["failing"]) == (503, ["sql"])
            await asyncio.sleep(0)
            async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
                assert (await client.get("/readyz")).status_code == 200
        finally:
            await locker.close()
