"""Sockets that live for a moment, closed or dropped by the client, leave nothing frozen behind.

The collector policy (infra/gc_policy.py) freezes what lives on, and a frozen reference cycle
is never collected. Each WebSocket once left its uvicorn/websockets protocol behind that way
(about 10 objects per closed and 23 per dropped socket, found by a red-team pass with
`hub_gc_frozen_objects` growing while `hub_cable_connections` was back at 0);
hub/ws_protocol.py ends that cycle.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support import CableClient, HubServer, api_user, create_product

USERS = 10
SOCKETS_PER_ROUND = 500
ROUNDS = 3
LEFT_PER_SOCKET = 5  # the bound tests/test_gc_policy.py allows a churned socket


@pytest.fixture(scope="module")
def churn_hub(tmp_path_factory, postgres_url: str, redis_url: str | None) -> Iterator[HubServer]:
    server = HubServer(
        workdir=tmp_path_factory.mktemp("churn"),
        database_url=postgres_url,
        redis_url=redis_url,
        extra_env={"HUB_CABLE_MAX_SOCKETS_PER_USER": "1000", "HUB_LOG_LEVEL": "info"},
    )
    server.start()
    yield server
    server.stop()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in the metrics")


async def _frozen_when_idle(http: httpx.AsyncClient) -> int:
    deadline = time.monotonic() + 20
    while True:
        text = (await http.get("/metrics")).text
        if _sample(text, "hub_cable_connections") == 0 or time.monotonic() > deadline:
            await asyncio.sleep(2)  # a freeze or two after the last socket ended
            text = (await http.get("/metrics")).text
            return int(
                _sample(text, "hub_gc_frozen_objects") + _sample(text, "hub_gc_tracked_objects")
            )
        await asyncio.sleep(0.2)


async def _short_lived(hub: HubServer, token: str, abort: bool) -> None:
    client = await CableClient.connect(hub.url, token, open_timeout=10)
    await client.recv()  # welcome
    await asyncio.sleep(0.05)
    if abort:
        client.ws.transport.abort()  # the client vanishes: no close frame
    else:
        await client.close()


async def test_short_lived_sockets_leave_nothing_frozen_behind(churn_hub):
    secret = create_product(churn_hub)["sk_live"]
    async with httpx.AsyncClient(base_url=churn_hub.url, timeout=30) as http:
        tokens = [(await api_user(http, secret))[1] for _ in range(USERS)]

        async def round_() -> None:
            gate = asyncio.Semaphore(200)

            async def one(i: int) -> None:
                async with gate:
                    await _short_lived(churn_hub, tokens[i % USERS], abort=i % 2 == 1)

            await asyncio.gather(*(one(i) for i in range(SOCKETS_PER_ROUND)))

        await round_()  # fills what is filled once
        baseline = await _frozen_when_idle(http)
        for _ in range(ROUNDS - 1):
            await round_()
        after = await _frozen_when_idle(http)
        churned = SOCKETS_PER_ROUND * (ROUNDS - 1)
        assert after - baseline <= LEFT_PER_SOCKET * churned, (
            f"{churned} short-lived sockets left {after - baseline} objects "
            f"({(after - baseline) / churned:.1f} per socket) with no socket open"
        )
