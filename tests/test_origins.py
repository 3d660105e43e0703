"""Exact-origin CORS: allowed origins get the header, others are refused before anything happens."""

from __future__ import annotations

import json

import pytest
import websockets

from infra.i18n import MESSAGES
from tests.support import bearer, login, product_headers, register

EVIL = "https://evil.example"


async def test_allowed_origin_gets_cors_headers(hub, client, email):
    response = await client.post(
        "/api/v1/auth/register",
        headers=product_headers(Origin=hub.url),
        json={
            "email": email,
            "password": "SecurePass123!",
            "password_confirmation": "SecurePass123!",
            "organization_name": "Acme",
        },
    )
    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == hub.url
    assert "Origin" in response.headers["vary"]


async def test_disallowed_origin_is_refused_and_changes_nothing(client, email):
    response = await client.post(
        "/api/v1/auth/register",
        headers=product_headers(Origin=EVIL),
        json={
            "email": email,
            "password": "SecurePass123!",
            "password_confirmation": "SecurePass123!",
            "organization_name": "Acme",
        },
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin.forbidden"
    assert "access-control-allow-origin" not in response.headers
    assert (await login(client, email)).status_code == 401  # no account was created


async def test_lookalike_origins_are_not_allowed(hub, client, email):
    await register(client, email)
    for origin in (
        hub.url + ".evil.example",
        hub.url.replace("http://", "https://"),
        hub.url + "/",
    ):
        response = await client.post(
            "/api/v1/auth/login",
            headers=product_headers(Origin=origin),
            json={"email": email, "password": "SecurePass123!"},
        )
        assert response.status_code == 403, origin


async def test_token_endpoints_check_the_tokens_product(client, email):
    tokens = await register(client, email)
    me = await client.get(
        "/api/v1/auth/me", headers={**bearer(tokens["access_token"]), "Origin": EVIL}
    )
    assert me.status_code == 403
    refresh = await client.post(
        "/api/v1/auth/refresh",
        headers={"Origin": EVIL},
        json={"refresh_token": tokens["refresh_token"]},
    )
    assert refresh.status_code == 403
    # The refused refresh did not rotate the token.
    ok = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert ok.status_code == 200


async def test_preflight(hub, client):
    allowed = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": hub.url,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, x-product-slug",
        },
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == hub.url
    assert "X-Product-Slug" in allowed.headers["access-control-allow-headers"]
    assert "POST" in allowed.headers["access-control-allow-methods"]

    denied = await client.options(
        "/api/v1/auth/login",
        headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
    )
    assert denied.status_code == 403
    assert "access-control-allow-origin" not in denied.headers
    # The standard error shape, in the request's language (no product is known yet).
    assert denied.headers["content-type"] == "application/json"
    assert denied.json()["error"]["code"] == "origin.forbidden"
    czech = await client.options(
        "/api/v1/auth/login",
        headers={
            "Origin": "null",
            "Access-Control-Request-Method": "POST",
            "Accept-Language": "cs",
        },
    )
    assert czech.status_code == 403
    assert czech.json()["error"] == {
        "code": "origin.forbidden",
        "message": MESSAGES["origin.forbidden"]["cs"],
    }


async def test_a_cable_upgrade_from_a_refused_origin_gets_the_error_shape(hub, client, email):
    tokens = await register(client, email)
    url = hub.url.replace("http://", "ws://") + f"/cable?token={tokens['access_token']}&locale=de"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, origin="https://evil.example")
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body)["error"] == {
        "code": "origin.forbidden",
        "message": MESSAGES["origin.forbidden"]["de"],
    }
