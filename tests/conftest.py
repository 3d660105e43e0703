"""Test fixtures: real hub processes (uvicorn on a free port), real SMTP, real databases.

`hub` is a running hub per SQL backend: SQLite always, PostgreSQL when `DATABASE_URL` names
one. Redis is used when `REDIS_URL` is set. With `HUB_REQUIRE_SERVICES=1` (CI) a missing
PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.console_support import console_email, create_admin, sign_in
from tests.support import HubServer, Mailbox, create_postgres_database, drop_postgres_database

REQUIRE_SERVICES = os.environ.get("HUB_REQUIRE_SERVICES") == "1"


def service_missing(what: str) -> None:
    message = f"{what} is not configured or not reachable"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (HUB_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox()
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if url is None and REQUIRE_SERVICES:
        pytest.fail("REDIS_URL is required when HUB_REQUIRE_SERVICES=1")
    return url


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str | None]:
    """A scratch database on the PostgreSQL `DATABASE_URL` names, dropped afterwards; None
    when it names none (an unreachable server is a missing service)."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgresql://", "postgres://")):
        yield None
        return
    try:
        url = create_postgres_database(base)
    except OSError as exc:
        service_missing(f"PostgreSQL at {base.split('@')[-1]} ({exc})")
    try:
        yield url
    finally:
        drop_postgres_database(base, url)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_postgres() as url:
        if url is None:
            service_missing("PostgreSQL (DATABASE_URL)")
        yield url


def _start(tmp_path_factory: pytest.TempPathFactory, **kwargs: object) -> HubServer:
    server = HubServer(workdir=tmp_path_factory.mktemp("hub"), **kwargs)  # type: ignore[arg-type]
    server.start()
    return server


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def hub(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    mailbox: Mailbox,
    redis_url: str | None,
) -> Iterator[HubServer]:
    """A running hub with generous rate limits, once per SQL backend."""
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_url")
    server = _start(
        tmp_path_factory,
        database_url=database_url,
        smtp_port=mailbox.port,
        redis_url=redis_url,
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def strict_hub(
    tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, redis_url: str | None
) -> Iterator[HubServer]:
    """A hub with production-like rate limits and short token lifetimes (SQLite)."""
    server = _start(
        tmp_path_factory,
        smtp_port=mailbox.port,
        redis_url=redis_url,
        rate_limits=False,
        extra_env={"HUB_RESET_TOKEN_TTL": "2", "HUB_LOGIN_TOKEN_TTL": "2"},
    )
    yield server
    server.stop()


@pytest.fixture
async def client(hub: HubServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as http:
        yield http


@pytest.fixture
def email() -> str:
    return f"user-{uuid.uuid4().hex[:12]}@example.com"


@pytest.fixture(scope="module")
def admin(hub: HubServer) -> str:
    """A console admin of `hub`, made with the CLI as an operator makes one: its email."""
    email = console_email("admin")
    create_admin(hub, email)
    return email


@pytest.fixture
async def console(hub: HubServer, admin: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in to `hub`'s console as `admin`."""
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as signed_in:
        answer = await sign_in(signed_in, admin)
        assert answer.status_code == 303, answer.text
        yield signed_in


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the test item (the demo page test screenshots failures)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
