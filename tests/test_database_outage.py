"""A request that meets an unreachable database is an outage, not a bug: it answers 503
`server.unavailable` with `Retry-After` (clients retry), never 500 `server.error`. Driven
through a real Starlette app and the hub's own handler; the outage is raised by the route,
as the database layer raises it when PostgreSQL is down or drops the connection."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from infra.errors import handle_unexpected


def app_raising(exc: Exception) -> Starlette:
    async def endpoint(request: Request) -> Response:
        raise exc

    return Starlette(
        routes=[Route("/", endpoint)], exception_handlers={Exception: handle_unexpected}
    )


async def answer(exc: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(exc), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        return await client.get("/")


@pytest.mark.parametrize(
    "outage",
    [
        ConnectionRefusedError(111, "Connection refused"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
    ],
)
async def test_an_unreachable_database_answers_503_with_retry_after(outage: Exception):
    response = await answer(outage)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["error"]["code"] == "server.unavailable"


async def test_any_other_failure_is_still_a_500():
    response = await answer(ValueError("a bug"))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server.error"
