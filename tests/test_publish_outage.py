"""Publishing while the database is gone: 503 `notification.not_stored`, and the connection
keeps answering, so a backend knows it may send the same request again.

(Found by a red-team pass: the recipient lookup, which runs before a request joins a batch,
let the database's error escape as a 500, after which the server dropped the keep-alive
connection and the client's next request got no answer at all.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.support import (
    HubServer,
    api_user,
    bearer,
    create_postgres_database,
    create_product,
    drop_postgres_database,
    run_async,
)


@pytest.fixture
def pg_hub(tmp_path, postgres_url: str) -> Iterator[tuple[HubServer, str]]:
    """A hub on a database of its own (so that it can be taken away), and that database's URL."""
    base = os.environ["DATABASE_URL"]
    url = create_postgres_database(base)
    server = HubServer(workdir=tmp_path, database_url=url)
    server.start()
    try:
        yield server, url
    finally:
        server.stop()
        _allow_connections(url, True)
        drop_postgres_database(base, url)


def _allow_connections(url: str, allow: bool) -> None:
    """Take the database away from the hub (its sessions ended, new ones refused) or give it
    back. `CONNECTION LIMIT 0` would not do: a superuser ignores it."""
    name = urlsplit(url).path.lstrip("/")

    async def run() -> None:
        base = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://")
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
            if not allow:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    name,
                )
        finally:
            await conn.close()

    run_async(run())


async def _publish(http: httpx.AsyncClient, secret: str, user: int, **headers: str):
    return await http.post(
        "/api/v1/notifications",
        headers={**bearer(secret), **headers},
        json={"user_id": user, "title": "while the database is gone"},
    )


async def test_publish_while_the_database_is_gone_answers_503_not_stored(pg_hub):
    hub, url = pg_hub
    secret = create_product(hub)["sk_live"]
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user, _ = await api_user(http, secret)
        assert (await _publish(http, secret, user)).status_code == 201
        _allow_connections(url, False)
        try:
            grouped = await _publish(http, secret, user)
            alone = await _publish(http, secret, user, **{"Idempotency-Key": "outage-1"})
        finally:
            _allow_connections(url, True)
        for down in (grouped, alone):
            assert down.status_code == 503, down.text
            assert down.json()["error"]["code"] == "notification.not_stored"
            assert down.headers.get("retry-after") == "1"
        # Back: the same requests go through, and nothing of the refused ones was stored.
        assert (await _publish(http, secret, user)).status_code == 201
        again = await _publish(http, secret, user, **{"Idempotency-Key": "outage-1"})
        assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert "Traceback" in hub.logs()  # logged for the operator, not sent to the client


async def test_publish_while_the_database_is_gone_keeps_the_connection_answering(pg_hub):
    hub, url = pg_hub
    secret = create_product(hub)["sk_live"]
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        user, _ = await api_user(http, secret)
        _allow_connections(url, False)
        answers = []
        try:
            for _ in range(6):
                try:
                    answers.append((await _publish(http, secret, user)).status_code)
                except httpx.ReadError:
                    answers.append("no answer")
        finally:
            _allow_connections(url, True)
    assert answers == [503] * 6
