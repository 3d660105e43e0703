"""The HTTP API in process: `create_app(Settings(…))` on a temporary SQLite file with the memory
broker, its lifespan run here and its routes called through `httpx.ASGITransport`. No uvicorn,
no port, no Redis: a change to a route, a guard or a body type is tested in milliseconds.
The real-server tests (`HubServer`) stay for processes, Redis and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from auth import products
from auth.tokens import generate_private_key_pem
from hub.app import create_app
from hub.migrate import migrate
from hub.services import app_services
from infra.settings import Settings
from tests.support import bearer, login, product_headers, register


@dataclass
class Tenant:
    slug: str
    keys: dict[str, str]  # pk_live, sk_live, pk_test, sk_test


@dataclass
class InProcessHub:
    client: httpx.AsyncClient
    acme: Tenant
    other: Tenant


def _settings(workdir: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{workdir / 'hub.db'}",
        redis_url=None,  # the memory broker and in-memory rate limits
        public_url="http://hub.test",
        jwt_private_keys_pem=generate_private_key_pem(),
        # The cheapest Argon2 the library takes: these tests hash a handful of passwords.
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        hash_threads=1,
    )


@pytest.fixture(scope="module")
def inprocess_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a fresh SQLite file, migrated the way `notification-hub migrate` does."""
    settings = _settings(tmp_path_factory.mktemp("inprocess-hub"))
    migrate(settings.database_url)  # blocking, before this module's event loop work
    return settings


@pytest.fixture(scope="module")
async def inprocess(inprocess_settings: Settings) -> AsyncIterator[InProcessHub]:
    app = create_app(inprocess_settings)
    async with app.router.lifespan_context(app):
        db = app_services(app).db
        tenants = []
        for slug in (f"acme-{uuid.uuid4().hex[:6]}", f"other-{uuid.uuid4().hex[:6]}"):
            _, keys = await products.create_product(db, slug=slug, name=slug.title(), origins=[])
            tenants.append(Tenant(slug, keys))
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield InProcessHub(client, *tenants)


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


@pytest.fixture
def timed() -> Iterator[None]:
    """Each flow's wall time, for the report (`-s` shows it)."""
    started = time.perf_counter()
    yield
    print(f" [{(time.perf_counter() - started) * 1000:.0f} ms]", end="")


async def test_register_login_me_refresh_logout(inprocess: InProcessHub, timed: None):
    client, slug = inprocess.client, inprocess.acme.slug
    email = _email("flow")
    created = await register(client, email, product=slug)
    assert created["user"]["email"] == email
    logged_in = await login(client, email, product=slug)
    assert logged_in.status_code == 200, logged_in.text
    tokens = logged_in.json()

    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == email

    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    pair = refreshed.json()
    assert pair["refresh_token"] != tokens["refresh_token"]

    out = await client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert out.status_code == 204
    after = await client.get("/api/v1/auth/me", headers=bearer(pair["access_token"]))
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "auth.unauthorized"


async def test_a_server_key_sends_and_the_user_lists_it(inprocess: InProcessHub, timed: None):
    client, acme = inprocess.client, inprocess.acme
    email = _email("reader")
    access = (await register(client, email, product=acme.slug))["access_token"]
    sent = await client.post(
        "/api/v1/notifications",
        headers={**bearer(acme.keys["sk_live"]), "Idempotency-Key": "k-1"},
        json={"email": email, "title": "Deploy finished", "data": {"build": 7}},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["count"] == 1

    page = await client.get("/api/v1/notifications?limit=5", headers=bearer(access))
    assert page.status_code == 200
    listed = page.json()
    assert [n["title"] for n in listed["notifications"]] == ["Deploy finished"]
    assert listed["unread_count"] == 1

    replay = await client.post(
        "/api/v1/notifications",
        headers={**bearer(acme.keys["sk_live"]), "Idempotency-Key": "k-1"},
        json={"email": email, "title": "Deploy finished", "data": {"build": 7}},
    )
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"


async def test_another_tenants_key_is_refused(inprocess: InProcessHub, timed: None):
    client, acme, other = inprocess.client, inprocess.acme, inprocess.other
    email = _email("tenant")
    user_id = (await register(client, email, product=acme.slug))["user"]["id"]

    foreign = await client.post(
        "/api/v1/notifications",
        headers=bearer(other.keys["sk_live"]),
        json={"user_id": user_id, "title": "Not yours"},
    )
    assert foreign.status_code == 422
    assert foreign.json()["error"]["code"] == "notification.unknown_recipients"
    looked_up = await client.get(f"/api/v1/users/{user_id}", headers=bearer(other.keys["sk_live"]))
    assert looked_up.status_code == 404
    assert looked_up.json()["error"]["code"] == "user.not_found"
    # A test key never reaches a live user of its own product either.
    test_key = await client.get(f"/api/v1/users/{user_id}", headers=bearer(acme.keys["sk_test"]))
    assert test_key.status_code == 404
    # A publishable key is not a server credential at all.
    browser = await client.get("/api/v1/keys", headers=bearer(acme.keys["pk_live"]))
    assert browser.status_code == 401


async def test_a_bad_body_answers_every_field_error(inprocess: InProcessHub, timed: None):
    client, slug = inprocess.client, inprocess.acme.slug
    answer = await client.post(
        "/api/v1/auth/register",
        headers=product_headers(slug, **{"Accept-Language": "cs"}),
        json={"email": "nope", "password": "short", "password_confirmation": "short"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation.failed"
    codes = {name: detail["code"] for name, detail in error["details"].items()}
    assert codes == {
        "email": "email.invalid",
        "password": "password.too_short",
        "organization_name": "field.required",
    }
    assert all(detail["message"] for detail in error["details"].values())
    malformed = await client.post(
        "/api/v1/auth/login",
        headers={**product_headers(slug), "Content-Type": "application/json"},
        content=b'{"email": NaN}',
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "request.malformed_json"


async def test_the_served_document_is_generated_from_the_routes(inprocess: InProcessHub):
    document = (await inprocess.client.get("/openapi.json")).json()
    assert document["servers"] == [{"url": "http://hub.test"}]
    send = document["paths"]["/api/v1/notifications"]["post"]
    assert send["security"] == [{"serverKey": []}, {"orgToken": []}, {"extensionKey": []}]
    assert "/api/v1/dev/test_notification" in document["paths"]  # development settings


async def test_requests_run_concurrently(inprocess: InProcessHub):
    """Many requests at once through the one app (its lifespan started once per module)."""
    client = inprocess.client
    answers = await asyncio.gather(*(client.get("/healthz") for _ in range(20)))
    assert {a.status_code for a in answers} == {200}
