"""Rate limits on login, register, forgot and refresh: 429 with Retry-After, nothing done.

Runs on `strict_hub`, which keeps the production default limits (see hub/settings.py
RateLimits); in CI its counters live in Redis.
"""

from __future__ import annotations

from collections.abc import Awaitable

import httpx
import pytest

from auth.ratelimit import RateLimiter
from infra.errors import HubError
from infra.settings import RateLimits
from tests.support import (
    PASSWORD,
    HubServer,
    bearer,
    create_product,
    login,
    product_headers,
    register,
)


@pytest.fixture
async def strict_client(strict_hub):
    async with httpx.AsyncClient(base_url=strict_hub.url, timeout=30) as http:
        yield http


def first_limit(rule: str) -> int:
    return int(rule.split(";")[0].split("/")[0])


def assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


async def test_login_per_account_limit(strict_client, email):
    await register(strict_client, email)
    allowed = first_limit(RateLimits().login_account) - 1  # registering counted once
    for _ in range(allowed):
        assert (await login(strict_client, email, "WrongPass999!")).status_code == 401
    # Spent: even the right password is refused now, and no tokens are issued.
    assert_limited(await login(strict_client, email, PASSWORD))


async def test_forgot_per_account_limit(strict_client, email):
    await register(strict_client, email)
    body = {"email": email}
    for _ in range(first_limit(RateLimits().forgot_account)):
        response = await strict_client.post(
            "/api/v1/auth/forgot_password", headers=product_headers(), json=body
        )
        assert response.status_code == 202
    assert_limited(
        await strict_client.post(
            "/api/v1/auth/forgot_password", headers=product_headers(), json=body
        )
    )


async def test_refresh_per_session_limit(strict_client, email):
    tokens = await register(strict_client, email)
    refresh_token = tokens["refresh_token"]
    for _ in range(first_limit(RateLimits().refresh_session)):
        response = await strict_client.post(
            "/api/v1/auth/refresh", json={"refresh_token": refresh_token}
        )
        assert response.status_code == 200, response.text
        refresh_token = response.json()["refresh_token"]
    assert_limited(
        await strict_client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})
    )
    # The limited request did not rotate: the token is still the session's current one.
    me = await strict_client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200


async def test_register_per_ip_limit(strict_client, email):
    limit = first_limit(RateLimits().register_ip)
    statuses = []
    for n in range(limit + 1):
        response = await strict_client.post(
            "/api/v1/auth/register",
            headers=product_headers(),
            json={
                "email": f"{n}-{email}",
                "password": PASSWORD,
                "password_confirmation": PASSWORD,
                "organization_name": "Acme",
            },
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_limited(response)
            break
    # Other tests on this hub may have registered from this IP too, so the limit may bite earlier.
    assert statuses[-1] == 429 and set(statuses[:-1]) <= {201}
    refused_email = f"{len(statuses) - 1}-{email}"
    assert (await login(strict_client, refused_email)).status_code in (401, 429)


async def test_an_account_budget_is_spent_per_pool_and_environment(tmp_path, redis_url, email):
    """Failed logins and reset requests for an address on one product never lock the same
    address out of another product's pool (there it is another identity)."""
    server = HubServer(
        workdir=tmp_path,
        redis_url=redis_url,
        extra_env={"HUB_RATE_LOGIN_ACCOUNT": "3/minute", "HUB_RATE_FORGOT_ACCOUNT": "2/minute"},
    )
    server.start()
    try:
        other = create_product(server)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            await register(http, email)  # on demo: one attempt of demo's budget
            for _ in range(3):
                spent = await login(http, email, "WrongPass999!", product=other["slug"])
                assert spent.status_code == 401
            assert_limited(await login(http, email, "WrongPass999!", product=other["slug"]))
            assert (await login(http, email, PASSWORD)).status_code == 200

            def forgot(product: str) -> Awaitable[httpx.Response]:
                return http.post(
                    "/api/v1/auth/forgot_password",
                    headers=product_headers(product),
                    json={"email": email},
                )

            for _ in range(2):
                assert (await forgot(other["slug"])).status_code == 202
            assert_limited(await forgot(other["slug"]))
            assert (await forgot("demo")).status_code == 202
    finally:
        server.stop()


async def test_one_address_past_its_own_limit_leaves_the_product_budget(tmp_path, redis_url):
    """Requests one address's own limit refused spend none of the product's public budget,
    so a flood from one address cannot lock everybody else out of log in and register; the
    product budget still caps what all addresses together get through."""
    server = HubServer(
        workdir=tmp_path,
        redis_url=redis_url,
        extra_env={"HUB_RATE_FORGOT_IP": "3/minute", "HUB_RATE_PUBLIC_PRODUCT": "10/minute"},
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

            def forgot(address: str, n: int) -> Awaitable[httpx.Response]:
                # 127.0.0.1 is a trusted proxy, so X-Forwarded-For names the client.
                return http.post(
                    "/api/v1/auth/forgot_password",
                    headers={**product_headers(), "X-Forwarded-For": address},
                    json={"email": f"x{n}@example.com"},
                )

            statuses = [(await forgot("198.51.100.66", n)).status_code for n in range(30)]
            assert statuses == [202] * 3 + [429] * 27
            # Another address: the product budget holds 7 more requests, not 0.
            email = "innocent@example.com"
            response = await http.post(
                "/api/v1/auth/register",
                headers={**product_headers(), "X-Forwarded-For": "192.0.2.11"},
                json={
                    "email": email,
                    "password": PASSWORD,
                    "password_confirmation": PASSWORD,
                    "organization_name": "Acme",
                },
            )
            assert response.status_code == 201, response.text
            response = await http.post(
                "/api/v1/auth/login",
                headers={**product_headers(), "X-Forwarded-For": "192.0.2.10"},
                json={"email": email, "password": PASSWORD},
            )
            assert response.status_code == 200, response.text
            # Many addresses together still meet the product's limit: 3 + 2 spent, 5 left.
            statuses = [(await forgot(f"203.0.113.{n}", n)).status_code for n in range(6)]
            assert statuses == [202] * 5 + [429]
            assert_limited(await forgot("203.0.113.200", 0))
    finally:
        server.stop()


async def test_limits_stay_on_per_process_while_the_shared_store_is_unreachable(caplog):
    """Redis down: a shared count is impossible, but skipping the limits would let one client
    flood logins or test notifications for as long as the outage lasts. Each process counts
    on its own, as without Redis, so a limit is at most the process count times looser."""
    limiter = RateLimiter("redis://127.0.0.1:1/0", key_prefix="unreachable")  # nobody listens
    for _ in range(2):
        await limiter.hit("2/minute", "login", "203.0.113.9")
    with pytest.raises(HubError) as refused:
        await limiter.hit("2/minute", "login", "203.0.113.9")
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    await limiter.hit("2/minute", "login", "203.0.113.10")  # another key, its own budget
    with pytest.raises(HubError):
        await limiter.check("2/minute", "login", "203.0.113.9")  # spent, checked unspent
    assert "rate limit store unavailable; login counted in this process only" in caplog.text
