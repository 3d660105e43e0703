"""The console's sign-in and session: the cookie's flags (development and production), CSRF
(missing or wrong token, a foreign Origin), idle and absolute expiry, a new session id at
every sign-in, sign-out ending the session on the server, the enumeration-safe and
rate-limited sign-in, and the separation of the cookie from every API credential.

The session-lifetime and rate-limit cases run in process (short lifetimes and the
production limits are settings); the rest against real hubs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from auth.tokens import generate_private_key_pem
from console import accounts
from hub.app import create_app
from hub.migrate import migrate
from hub.services import app_services
from infra.console_settings import ConsoleSettings
from infra.settings import RateLimits, Settings
from tests.console_support import (
    CONSOLE_PASSWORD,
    console_email,
    create_admin,
    csrf_of,
    page_csrf,
    post_form,
    sign_in,
    sign_in_over_plain_http,
)
from tests.support import PASSWORD, api_user, bearer, create_product, production_hub

COOKIE = "hub_console_session"
GENEROUS = RateLimits(**{name: "100000/minute" for name in RateLimits.__dataclass_fields__})


# -- in process ---------------------------------------------------------------------------


@dataclass
class ConsoleApp:
    transport: httpx.ASGITransport
    admin: str

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport, base_url="http://hub.test")


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("console-auth")


def _settings(workdir: Path, **overrides: object) -> Settings:
    database_url = f"sqlite:///{workdir / f'hub-{uuid.uuid4().hex[:6]}.db'}"
    migrate(database_url)
    return Settings(
        database_url=database_url,
        public_url="http://hub.test",
        jwt_private_keys_pem=generate_private_key_pem(),
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        hash_threads=1,
        **overrides,  # type: ignore[arg-type]
    )


async def _console_app(settings: Settings) -> AsyncIterator[ConsoleApp]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app_services(app)
        admin = console_email("admin")
        password_hash = await services.console.hasher.hash(CONSOLE_PASSWORD)
        await accounts.create_account(
            services.db, admin, password_hash=password_hash, is_admin=True
        )
        yield ConsoleApp(httpx.ASGITransport(app=app, client=("127.0.0.1", 50000)), admin)


@pytest.fixture(scope="module")
def short_settings(settings_dir: Path) -> Settings:
    """Sessions that end after 2 s idle and 5 s in all (migrated before the loop runs)."""
    console = ConsoleSettings(idle_seconds=2, absolute_seconds=5)
    return _settings(settings_dir, console=console, rate_limits=GENEROUS)


@pytest.fixture(scope="module")
def default_settings(settings_dir: Path) -> Settings:
    """The public login's production rate limits (the defaults)."""
    return _settings(settings_dir)


@pytest.fixture(scope="module")
async def short_sessions(short_settings: Settings) -> AsyncIterator[ConsoleApp]:
    async for app in _console_app(short_settings):
        yield app


@pytest.fixture(scope="module")
async def production_limits(default_settings: Settings) -> AsyncIterator[ConsoleApp]:
    async for app in _console_app(default_settings):
        yield app


async def test_cookie_flags_in_development(short_sessions):
    async with short_sessions.client() as client:
        signed = await sign_in(client, short_sessions.admin)
    assert signed.status_code == 303 and signed.headers["location"] == "/console/products"
    [cookie] = [c for c in signed.headers.get_list("set-cookie") if c.startswith(COOKIE + "=")]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax"} <= flags
    assert "secure" not in flags
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value) >= 43  # secrets.token_urlsafe(32)


async def test_an_idle_session_ends(short_sessions):
    async with short_sessions.client() as client:
        await sign_in(client, short_sessions.admin)
        assert (await client.get("/console/products")).status_code == 200
        await asyncio.sleep(2.6)
        ended = await client.get("/console/products")
    assert ended.status_code == 303 and ended.headers["location"] == "/console/sign-in"


async def test_a_used_session_still_ends_at_its_absolute_expiry(short_sessions):
    async with short_sessions.client() as client:
        await sign_in(client, short_sessions.admin)
        started = time.monotonic()
        while time.monotonic() - started < 4.2:  # never idle for long
            assert (await client.get("/console/products")).status_code == 200
            await asyncio.sleep(0.7)
        await asyncio.sleep(max(0.0, 5.3 - (time.monotonic() - started)))
        ended = await client.get("/console/products")
    assert ended.status_code == 303 and ended.headers["location"] == "/console/sign-in"


async def test_a_sign_in_presenting_a_session_gets_a_new_id_and_ends_the_old(short_sessions):
    async with short_sessions.client() as client:
        await sign_in(client, short_sessions.admin)
        first = client.cookies[COOKIE]
        await sign_in(client, short_sessions.admin)
        second = client.cookies[COOKIE]
    assert first != second
    async with short_sessions.client() as stale:
        stale.cookies.set(COOKIE, first)
        refused = await stale.get("/console/products")
    assert refused.status_code == 303 and refused.headers["location"] == "/console/sign-in"


async def test_sign_in_is_rate_limited_per_address_and_per_client(production_limits):
    email = console_email("target")
    async with production_limits.client() as client:
        answers = [(await sign_in(client, email, "wrong-password")).status_code for _ in range(11)]
        assert answers[:10] == [401] * 10  # login_account: 10/minute
        assert answers[10] == 429
        # Other addresses from the same client: its 30/minute (11 spent above) runs out.
        others = [
            (await sign_in(client, console_email(), "wrong-password")).status_code
            for _ in range(20)
        ]
    assert 429 in others
    assert others.index(429) == 30 - 11


# -- real hubs ----------------------------------------------------------------------------


async def test_cookie_is_secure_in_production(tmp_path):
    with production_hub(tmp_path) as hub:
        email = console_email("admin")
        create_admin(hub, email)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            form, signed = await sign_in_over_plain_http(client, email)
            assert "secure" in form.headers["set-cookie"].lower()
    assert signed.status_code == 303, signed.text
    cookie = signed.headers["set-cookie"]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert cookie.startswith(COOKIE + "=")
    assert {"httponly", "secure", "path=/", "samesite=lax"} <= flags


async def test_state_changes_without_the_csrf_token_are_refused(console):
    for data in ({}, {"csrf_token": "forged"}, {"csrf_token": ""}):
        refused = await console.post("/console/sign-out", data=data)
        assert refused.status_code == 403, refused.text
        assert "did not come from this console" in refused.text
    # Still signed in: none of them ended the session.
    assert (await console.get("/console/products")).status_code == 200


async def test_a_foreign_origin_is_refused_even_with_the_token(console, hub):
    token = await page_csrf(console)
    foreign = await console.post(
        "/console/sign-out", data={"csrf_token": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    assert "another site" in foreign.text
    header = await console.post(
        "/console/sign-out", headers={"X-CSRF-Token": token, "Origin": hub.url}, data={}
    )
    assert header.status_code == 303  # the header form of the token, from our own origin


async def test_the_sign_in_form_needs_its_own_token(hub, admin):
    async with httpx.AsyncClient(base_url=hub.url) as client:
        refused = await client.post(
            "/console/sign-in", data={"email": admin, "password": CONSOLE_PASSWORD}
        )
    assert refused.status_code == 403
    assert COOKIE not in refused.headers.get("set-cookie", "")


async def test_sign_out_ends_the_session_on_the_server(console, hub):
    value = console.cookies[COOKIE]
    signed_out = await post_form(console, "/console/sign-out")
    assert signed_out.status_code == 303
    assert f'{COOKIE}=""' in signed_out.headers["set-cookie"]
    async with httpx.AsyncClient(base_url=hub.url, cookies={COOKIE: value}) as replay:
        refused = await replay.get("/console/products")
    assert refused.status_code == 303 and refused.headers["location"] == "/console/sign-in"


async def test_unknown_email_and_wrong_password_answer_alike(hub, admin):
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
        answers = {}
        for _ in range(5):
            for kind, email in (("unknown", console_email("nobody")), ("wrong", admin)):
                started = time.perf_counter()
                answer = await sign_in(client, email, "not-the-password")
                timings[kind].append(time.perf_counter() - started)
                answers[kind] = answer
    unknown, wrong = answers["unknown"], answers["wrong"]
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong email or password." in unknown.text and "Wrong email or password." in wrong.text
    assert unknown.text.replace(csrf_of(unknown.text), "") == wrong.text.replace(
        csrf_of(wrong.text), ""
    )
    # Both verify an argon2 hash (a dummy one for the unknown email): comparable times.
    assert statistics.median(timings["unknown"]) > 0.5 * statistics.median(timings["wrong"])


async def test_api_credentials_are_refused_on_the_console(console, hub, client):
    product = create_product(hub)
    _, access_token = await api_user(client, product["sk_live"])
    registered = await client.post(
        "/api/v1/auth/register",
        headers={"X-Publishable-Key": product["pk_live"]},
        json={
            "email": console_email("owner"),
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "name": "Owner",
            "organization_name": "Acme",
        },
    )
    assert registered.status_code == 201, registered.text
    workspace = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=bearer(registered.json()["access_token"]),
        json={"workspace_api_token": {"name": "ci"}},
    )
    assert workspace.status_code == 201, workspace.text
    credentials = {
        "secret key": bearer(product["sk_live"]),
        "user access token": bearer(access_token),
        "workspace token": bearer(workspace.json()["token"]),
        "publishable key": {"X-Publishable-Key": product["pk_live"]},
    }
    for what, headers in credentials.items():
        # With the console's own cookie as well: the API credential is refused outright.
        refused = await console.get("/console/products", headers=headers)
        assert refused.status_code == 403, what
        assert "API credentials do not work on the console" in refused.text
        async with httpx.AsyncClient(base_url=hub.url, headers=headers) as bare:
            alone = await bare.get(f"/console/products/{product['slug']}/keys")
        assert alone.status_code == 403, what


async def test_the_console_cookie_is_ignored_by_the_apis(console, hub):
    product = create_product(hub)
    cookie = {COOKIE: console.cookies[COOKIE]}
    async with httpx.AsyncClient(base_url=hub.url, cookies=cookie) as only_cookie:
        for path in (
            "/api/v1/product",  # server API
            "/api/v1/audit_log",  # server API, the console's own log
            "/api/v1/keys",
            "/api/v1/auth/me",  # user API
            "/api/v1/notifications",
            "/api/v1/workspace_api_tokens",  # org API
        ):
            answer = await only_cookie.get(path, headers={"X-Product-Slug": product["slug"]})
            assert answer.status_code == 401, (path, answer.text)


async def test_a_sign_in_posted_from_another_site_is_refused(hub, admin):
    async with httpx.AsyncClient(base_url=hub.url) as client:
        form = await client.get("/console/sign-in")
        refused = await client.post(
            "/console/sign-in",
            headers={"Origin": "https://evil.example"},
            data={"csrf_token": csrf_of(form.text), "email": admin, "password": CONSOLE_PASSWORD},
        )
    assert refused.status_code == 403
    assert COOKIE not in refused.headers.get("set-cookie", "")
