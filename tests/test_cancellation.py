"""A client that vanishes mid-work never freezes the hub.

Cable clients flood `mark_all_read` and drop their TCP connections without a goodbye (RST), so
the hub cancels their readers in the middle of SQL transactions; HTTP clients hang up in the
middle of a bulk publish. Afterwards no connection of the hub is left `idle in transaction`,
the pool still serves publishes and `/readyz` at once, and SIGTERM ends the process within
its shutdown timeout. Every test runs its own hub process, so that it can SIGTERM it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import scratch_postgres, service_missing
from tests.support import (
    NOTIFICATIONS_IDENTIFIER,
    HubServer,
    api_user,
    bearer,
    cable,
    create_product,
)

SOCKETS = 5
FRAMES_PER_SOCKET = 300
ROUNDS = 5  # the pool holds 20 connections: 4 rounds of 5 leaked ones used to drain it
RECIPIENTS = 1000
# uvicorn's graceful shutdown (10 s) plus the lifespan's bounded SQL shutdown, with room for
# a loaded machine; a hang is forever.
SHUTDOWN_WITHIN = 25.0

MARK_ALL_READ = json.dumps(
    {
        "command": "message",
        "identifier": NOTIFICATIONS_IDENTIFIER,
        "data": json.dumps({"action": "mark_all_read"}),
    }
)


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A scratch PostgreSQL database of this test's own (its sessions are all the hub's)."""
    with scratch_postgres() as url:
        if url is None:
            service_missing("PostgreSQL (DATABASE_URL)")
        yield url


@pytest.fixture
def own_hub(tmp_path: Path, redis_url: str | None) -> Iterator[list[HubServer]]:
    """Hubs this test starts (and may SIGTERM); stopped at teardown, before any scratch
    database is dropped."""
    started: list[HubServer] = []
    yield started
    for hub in started:
        with contextlib.suppress(Exception):
            hub.stop()


async def start_hub(
    started: list[HubServer], workdir: Path, database_url: str | None, redis_url: str | None
) -> tuple[HubServer, str]:
    await asyncio.to_thread(workdir.mkdir, parents=True)
    hub = HubServer(workdir=workdir, database_url=database_url, redis_url=redis_url)
    started.append(hub)
    await asyncio.to_thread(hub.start)
    keys = await asyncio.to_thread(create_product, hub)
    return hub, keys["sk_live"]


# -- helpers --------------------------------------------------------------------------------


def vanish(transport: asyncio.BaseTransport) -> None:
    """Drop a TCP connection the way a crashed client or a dead network does: RST, no close
    frame, no FIN (SO_LINGER 0, then abort)."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()  # type: ignore[attr-defined]


async def flood_and_vanish(hub: HubServer, token: str) -> None:
    """One tab: subscribe, send 300 `mark_all_read` frames as fast as it can, vanish."""
    tab = await cable(hub.url, token)
    for _ in range(FRAMES_PER_SOCKET):
        await tab.send(MARK_ALL_READ)
    await asyncio.sleep(0.05)  # let the hub get busy with them
    vanish(tab.ws.transport)


async def idle_in_transaction(database_url: str) -> list[str]:
    """What the sessions left `idle in transaction` on this database were last running."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
        )
    finally:
        await conn.close()
    return [row["query"] for row in rows]


async def assert_none_idle_in_transaction(database_url: str, within: float = 5.0) -> None:
    # A rollback of a cancelled unit of work may still be on its way: give it a moment (far
    # below the idle_in_transaction_session_timeout backstop, which must not be what helps).
    deadline = time.monotonic() + within
    while stuck := await idle_in_transaction(database_url):
        assert time.monotonic() < deadline, f"left idle in transaction: {stuck}"
        await asyncio.sleep(0.1)


async def assert_serves_at_once(hub: HubServer, sk: str, user_id: int) -> None:
    """A publish (SQL write + broker) and a readiness probe each answer within a second."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=1.0) as http:
        started = time.monotonic()
        response = await http.post(
            "/api/v1/notifications",
            headers=bearer(sk),
            json={"user_id": user_id, "title": "still alive"},
        )
        assert response.status_code == 201, response.text
        ready = await http.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert time.monotonic() - started < 2.0


async def assert_sigterm_ends_it(hub: HubServer) -> None:
    assert hub.process is not None
    hub.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    try:
        await asyncio.to_thread(hub.process.wait, SHUTDOWN_WITHIN)
    except Exception:
        raise AssertionError(
            f"still running {SHUTDOWN_WITHIN}s after SIGTERM:\n{hub.logs()[-3000:]}"
        ) from None
    assert time.monotonic() - started < SHUTDOWN_WITHIN


async def flood_rounds(hub: HubServer, sk: str) -> int:
    """ROUNDS rounds of SOCKETS tabs of one user flooding and vanishing; the user's id."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user_id, token = await api_user(http, sk)
        body = {"user_id": user_id, "title": "unread"}
        for _ in range(ROUNDS):
            # Something to mark read, so that every transaction writes.
            for _ in range(3):
                await http.post("/api/v1/notifications", headers=bearer(sk), json=body)
            await asyncio.gather(*(flood_and_vanish(hub, token) for _ in range(SOCKETS)))
            await asyncio.sleep(0.3)
    return user_id


# -- cable clients that vanish mid-transaction ----------------------------------------------


async def test_vanishing_cable_clients_leave_no_transaction_open_on_postgres(
    tmp_path, postgres_database, own_hub, redis_url
):
    hub, sk = await start_hub(own_hub, tmp_path / "hub", postgres_database, redis_url)
    user_id = await flood_rounds(hub, sk)
    await assert_none_idle_in_transaction(postgres_database)
    await assert_serves_at_once(hub, sk, user_id)
    await assert_sigterm_ends_it(hub)
    assert "Traceback" not in hub.logs()


async def test_vanishing_cable_clients_do_not_lock_sqlite(tmp_path, own_hub, redis_url):
    # Writers queue on one asyncio lock: a writer cancelled with the lock held, or a
    # connection left inside a write transaction, would stop every later write.
    hub, sk = await start_hub(own_hub, tmp_path / "hub", None, redis_url)
    user_id = await flood_rounds(hub, sk)
    await assert_serves_at_once(hub, sk, user_id)
    await assert_sigterm_ends_it(hub)
    assert "Traceback" not in hub.logs()


# -- HTTP clients that vanish mid-request ---------------------------------------------------


async def post_and_vanish(hub: HubServer, path: str, token: str, body: dict, after: float) -> None:
    """Send a whole request, then drop the connection `after` seconds later (mid-work)."""
    payload = json.dumps(body).encode()
    _, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{hub.port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    await asyncio.sleep(after)
    vanish(writer.transport)


async def test_http_clients_vanishing_mid_bulk_publish_leave_no_transaction_open(
    tmp_path, postgres_database, own_hub, redis_url
):
    hub, sk = await start_hub(own_hub, tmp_path / "hub", postgres_database, redis_url)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        gate = asyncio.Semaphore(16)

        async def new_user(i: int) -> int:
            async with gate:
                response = await http.post(
                    "/api/v1/users", headers=bearer(sk), json={"external_id": f"bulk-{i}"}
                )
                assert response.status_code in (200, 201), response.text
                return response.json()["user"]["id"]

        user_ids = await asyncio.gather(*(new_user(i) for i in range(RECIPIENTS)))
        reader_id, reader_token = await api_user(http, sk)
    bulk = {"title": "bulk", "recipients": [{"user_id": u} for u in user_ids]}
    # 25 bulk publishes and 25 read_all, abandoned at different moments of their work:
    # more than the pool's 20 connections.
    for i in range(25):
        await asyncio.gather(
            post_and_vanish(hub, "/api/v1/notifications", sk, bulk, after=i * 0.004),
            post_and_vanish(
                hub, "/api/v1/notifications/read_all", reader_token, {}, after=i * 0.001
            ),
        )
    await assert_none_idle_in_transaction(postgres_database)
    await assert_serves_at_once(hub, sk, reader_id)
    await assert_sigterm_ends_it(hub)
    assert " hub.db: " not in hub.logs()  # no COMMIT or ROLLBACK given up
    # A client gone before its body was read is not an unhandled error either.
    assert "Traceback" not in hub.logs()
