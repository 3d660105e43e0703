"""Organization credentials as the Kiket seed shows them: workspace API tokens
(`/api/v1/workspace_api_tokens`) and OAuth 2.0 client credentials (`/oauth/token`), scoped to
their organization, revocable at once."""

from __future__ import annotations

import asyncio
import base64
import datetime

import pytest

from tests.support import (
    PASSWORD,
    api_user,
    bearer,
    create_product,
    error_code,
    register_owner,
    vanish_mid_body,
)


@pytest.fixture
async def product(hub):
    return create_product(hub)


@pytest.fixture
async def owner(client, product, email):
    return await register_owner(client, product, email)


async def new_token(client, credential: str, **fields) -> dict:
    body = {"workspace_api_token": {"name": "CLI – laptop", **fields}}
    response = await client.post(
        "/api/v1/workspace_api_tokens", headers=bearer(credential), json=body
    )
    assert response.status_code == 201, response.text
    return response.json()


async def send(client, credential: str, user_id: int):
    return await client.post(
        "/api/v1/notifications",
        headers=bearer(credential),
        json={"user_id": user_id, "title": "From automation"},
    )


# -- workspace API tokens ----------------------------------------------------------------


async def test_create_list_use_and_revoke_as_the_seed_shows(client, owner):
    access = owner["access_token"]
    expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=30)).replace(
        microsecond=0
    )
    created = await new_token(
        client,
        access,
        scopes=["notifications:write", "members:read"],
        expires_at=expires.isoformat().replace("+00:00", "Z"),
    )
    assert created["name"] == "CLI – laptop"
    assert created["scopes"] == ["members:read", "notifications:write"]
    assert created["token"].startswith("wksp_") and len(created["token"]) == 5 + 43
    assert created["token_prefix"] == created["token"][:13]
    assert created["last_used_at"] is None
    assert created["owner"] == {"id": owner["user"]["id"], "name": "Avery"}
    assert created["expires_at"].startswith(expires.date().isoformat())

    token = created["token"]
    sent = await send(client, token, owner["user"]["id"])
    assert sent.status_code == 201, sent.text
    members = await client.get("/api/v1/organization/members", headers=bearer(token))
    assert members.status_code == 200
    assert [m["id"] for m in members.json()["members"]] == [owner["user"]["id"]]

    listed = await client.get("/api/v1/workspace_api_tokens", headers=bearer(access))
    [entry] = listed.json()["workspace_api_tokens"]
    assert entry["id"] == created["id"] and "token" not in entry
    assert entry["last_used_at"] is not None

    revoked = await client.delete(
        f"/api/v1/workspace_api_tokens/{created['id']}", headers=bearer(access)
    )
    assert revoked.status_code == 204
    assert (await send(client, token, owner["user"]["id"])).status_code == 401
    again = await client.delete(
        f"/api/v1/workspace_api_tokens/{created['id']}", headers=bearer(access)
    )
    assert again.status_code == 404 and error_code(again) == "workspace_token.not_found"


async def test_only_owners_and_admins_issue_tokens(client, product, owner):
    # A server-managed user is a plain member of the environment's default organization.
    _, member_access = await api_user(client, product["sk_live"])
    response = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=bearer(member_access),
        json={"workspace_api_token": {"name": "nope"}},
    )
    assert response.status_code == 403 and error_code(response) == "auth.forbidden"
    for credential in (product["sk_live"], product["pk_live"], "garbage"):
        refused = await client.get("/api/v1/workspace_api_tokens", headers=bearer(credential))
        assert refused.status_code == 401, credential


async def test_scopes_limit_a_token_to_its_organization_and_its_grants(client, product, owner):
    access = owner["access_token"]
    outsider, _ = await api_user(client, product["sk_live"])  # not in the owner's org
    writer = (await new_token(client, access, scopes=["notifications:write"]))["token"]
    assert (await send(client, writer, owner["user"]["id"])).status_code == 201
    foreign = await send(client, writer, outsider)
    assert foreign.status_code == 422 and error_code(foreign) == "notification.unknown_recipients"
    members = await client.get("/api/v1/organization/members", headers=bearer(writer))
    assert members.status_code == 403
    manage = await client.get("/api/v1/workspace_api_tokens", headers=bearer(writer))
    assert manage.status_code == 403
    product_only = await client.post(
        "/api/v1/users", headers=bearer(writer), json={"external_id": "x"}
    )
    assert product_only.status_code == 401  # a workspace token is no product key

    full = (await new_token(client, access))["token"]  # blank scopes: full org access
    assert (await send(client, full, owner["user"]["id"])).status_code == 201
    child = await new_token(client, full, scopes=["members:read"])  # it may manage tokens
    assert child["owner"]["id"] == owner["user"]["id"]


async def test_expired_token_is_401_and_bad_input_is_422(client, owner):
    access = owner["access_token"]
    soon = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=2)
    token = (await new_token(client, access, expires_at=soon.isoformat()))["token"]
    assert (await send(client, token, owner["user"]["id"])).status_code == 201
    await asyncio.sleep(2.5)
    assert (await send(client, token, owner["user"]["id"])).status_code == 401
    for body in (
        {"name": "x"},  # no wrapper
        {"workspace_api_token": {"name": "x", "scopes": ["issues:read"]}},
        {"workspace_api_token": {"name": "x", "expires_at": "2020-01-01T00:00:00Z"}},
        {"workspace_api_token": {"name": "x", "expires_at": "tomorrow"}},
        {"workspace_api_token": {"scopes": []}},
    ):
        response = await client.post(
            "/api/v1/workspace_api_tokens", headers=bearer(access), json=body
        )
        assert response.status_code == 422, body
    listed = await client.get("/api/v1/workspace_api_tokens", headers=bearer(access))
    assert listed.json()["workspace_api_tokens"] == []  # the expired one is not listed


async def test_expiry_past_the_database_range_or_ten_years_ahead_is_422(client, owner):
    access = owner["access_token"]
    eleven_years = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=11 * 366)
    for expires_at in (
        "9999-12-31T23:59:59-00:01",  # past year 9999 in UTC: PostgreSQL answered 500
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59+00:00",
        eleven_years.isoformat(),
    ):
        body = {"workspace_api_token": {"name": "x", "expires_at": expires_at}}
        response = await client.post(
            "/api/v1/workspace_api_tokens", headers=bearer(access), json=body
        )
        assert response.status_code == 422, (expires_at, response.text)
        details = response.json()["error"]["details"]
        assert details["expires_at"]["code"] == "field.too_far_ahead", expires_at
        assert "10" in details["expires_at"]["message"]
    for expires_at in ("2020-01-01T00:00:00Z", 20270101, ["2027-01-01T00:00:00Z"]):
        body = {"workspace_api_token": {"name": "x", "expires_at": expires_at}}
        response = await client.post(
            "/api/v1/workspace_api_tokens", headers=bearer(access), json=body
        )
        assert response.status_code == 422, (expires_at, response.text)
        assert response.json()["error"]["details"]["expires_at"]["code"] == "field.not_datetime"
    listed = await client.get("/api/v1/workspace_api_tokens", headers=bearer(access))
    assert listed.json()["workspace_api_tokens"] == []  # nothing was issued


@pytest.mark.parametrize("offset", ["+02:00", "-05:00", "+14:00", "-00:01"])
async def test_expiry_with_an_offset_is_kept_as_the_same_instant(client, owner, offset):
    access = owner["access_token"]
    zone = datetime.timezone(
        (-1 if offset[0] == "-" else 1)
        * datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[4:]))
    )
    asked = (datetime.datetime.now(zone) + datetime.timedelta(days=30)).replace(microsecond=0)
    assert asked.isoformat().endswith(offset)
    created = await new_token(client, access, expires_at=asked.isoformat())
    answered = datetime.datetime.fromisoformat(created["expires_at"].replace("Z", "+00:00"))
    assert answered == asked  # SQLite dropped the offset: +02:00 expired two hours late
    listed = await client.get("/api/v1/workspace_api_tokens", headers=bearer(access))
    [entry] = listed.json()["workspace_api_tokens"]
    assert datetime.datetime.fromisoformat(entry["expires_at"].replace("Z", "+00:00")) == asked
    # -05:00 stored as UTC would have expired the token five hours early: it still works.
    assert (await send(client, created["token"], owner["user"]["id"])).status_code == 201


# -- OAuth client credentials ------------------------------------------------------------


async def register_app(client, access: str, scopes: list[str]) -> dict:
    response = await client.post(
        "/api/v1/oauth_applications",
        headers=bearer(access),
        json={"oauth_application": {"name": "CRM sync", "scopes": scopes}},
    )
    assert response.status_code == 201, response.text
    return response.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def test_client_credentials_flow(client, owner):
    access = owner["access_token"]
    app = await register_app(client, access, ["notifications:write", "members:read"])
    assert app["client_id"].startswith("hub_") and app["client_secret"]
    form = {"grant_type": "client_credentials", "scope": "notifications:write"}
    by_basic = await client.post(
        "/oauth/token", data=form, headers=basic(app["client_id"], app["client_secret"])
    )
    assert by_basic.status_code == 200, by_basic.text
    issued = by_basic.json()
    assert issued["token_type"] == "Bearer" and issued["scope"] == "notifications:write"
    assert 0 < issued["expires_in"] <= 3600
    assert by_basic.headers["cache-control"] == "no-store"
    by_form = await client.post(
        "/oauth/token",
        data={**form, "client_id": app["client_id"], "client_secret": app["client_secret"]},
    )
    assert by_form.status_code == 200

    token = issued["access_token"]
    assert (await send(client, token, owner["user"]["id"])).status_code == 201
    narrower = await client.get("/api/v1/organization/members", headers=bearer(token))
    assert narrower.status_code == 403  # members:read was not asked for
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401

    listed = await client.get("/api/v1/oauth_applications", headers=bearer(access))
    [entry] = listed.json()["oauth_applications"]
    assert "client_secret" not in entry and entry["last_used_at"] is not None
    revoked = await client.delete(f"/api/v1/oauth_applications/{app['id']}", headers=bearer(access))
    assert revoked.status_code == 204
    assert (await send(client, token, owner["user"]["id"])).status_code == 401
    after = await client.post(
        "/oauth/token", data=form, headers=basic(app["client_id"], app["client_secret"])
    )
    assert after.status_code == 401 and after.json()["error"] == "invalid_client"


async def test_token_endpoint_errors_follow_rfc_6749(client, owner):
    app = await register_app(client, owner["access_token"], ["notifications:write"])
    good = basic(app["client_id"], app["client_secret"])
    cases = [
        (
            {"grant_type": "client_credentials"},
            basic(app["client_id"], "wrong"),
            401,
            "invalid_client",
        ),
        ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
        ({"grant_type": "password"}, good, 400, "unsupported_grant_type"),
        ({}, good, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "admin"}, good, 400, "invalid_scope"),
        (
            {"grant_type": "client_credentials", "client_id": app["client_id"]},
            good,
            400,
            "invalid_request",
        ),
    ]
    for form, headers, status, error in cases:
        response = await client.post("/oauth/token", data=form, headers=headers)
        assert response.status_code == status, (form, response.text)
        assert response.json()["error"] == error
        assert "error_description" in response.json()
    wrong_secret = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=cases[0][1]
    )
    assert wrong_secret.headers["www-authenticate"].startswith("Basic")
    untyped = await client.post("/oauth/token", content=b"grant_type=x", headers={**good})
    assert untyped.status_code == 400 and untyped.json()["error"] == "invalid_request"


# -- OAuth credentials get the key rules (browser, plain HTTP) ---------------------------


async def test_oauth_credentials_from_a_browser_are_refused(client, owner):
    """A client secret or an OAuth access token sent by a browser is in client code: 401
    `auth.key_in_browser`, as for keys and workspace tokens (refused, not revoked)."""
    app = await register_app(client, owner["access_token"], ["notifications:write"])
    form = {"grant_type": "client_credentials"}
    credentials = basic(app["client_id"], app["client_secret"])
    browser = {"Origin": "https://app.example.com"}
    refused = await client.post("/oauth/token", data=form, headers={**credentials, **browser})
    assert refused.status_code == 401 and error_code(refused) == "auth.key_in_browser"
    issued = await client.post("/oauth/token", data=form, headers=credentials)
    assert issued.status_code == 200, issued.text
    token = issued.json()["access_token"]
    from_browser = await client.post(
        "/api/v1/notifications",
        headers={**bearer(token), **browser},
        json={"user_id": owner["user"]["id"], "title": "From a page"},
    )
    assert from_browser.status_code == 401 and error_code(from_browser) == "auth.key_in_browser"
    assert (await send(client, token, owner["user"]["id"])).status_code == 201


async def test_oauth_credentials_over_plain_http_revoke_the_application(tmp_path):
    """Production: a client secret or an OAuth access token sent over plain HTTP is
    compromised, so the application is revoked (its secret and tokens stop), as a
    workspace token would be."""
    import httpx

    from tests.support import production_hub

    https = {"X-Forwarded-Proto": "https"}  # from 127.0.0.1, a trusted proxy
    form = {"grant_type": "client_credentials"}
    with production_hub(tmp_path) as server:
        product = create_product(server)
        async with httpx.AsyncClient(base_url=server.url, headers=https) as secure:
            response = await secure.post(
                "/api/v1/auth/register",
                headers={"X-Publishable-Key": product["pk_live"]},
                json={
                    "email": "owner@example.com",
                    "password": PASSWORD,
                    "password_confirmation": PASSWORD,
                    "organization_name": "Acme",
                },
            )
            assert response.status_code == 201, response.text
            owner = response.json()
            apps = [await register_app(secure, owner["access_token"], ["admin"]) for _ in "ab"]
            secrets = [basic(a["client_id"], a["client_secret"]) for a in apps]
            token = (await secure.post("/oauth/token", data=form, headers=secrets[1])).json()
            async with httpx.AsyncClient(base_url=server.url) as plain:
                exposed = await plain.post("/oauth/token", data=form, headers=secrets[0])
                assert exposed.status_code == 401, exposed.text
                assert error_code(exposed) == "auth.key_compromised"
                used = await plain.get(
                    "/api/v1/organization/members", headers=bearer(token["access_token"])
                )
                assert used.status_code == 401 and error_code(used) == "auth.key_compromised"
            for secret in secrets:  # both applications are revoked for good, HTTPS or not
                after = await secure.post("/oauth/token", data=form, headers=secret)
                assert after.status_code == 401 and after.json()["error"] == "invalid_client"
            gone = await secure.get(
                "/api/v1/organization/members", headers=bearer(token["access_token"])
            )
            assert gone.status_code == 401


async def test_a_token_request_cut_off_mid_body_is_not_an_error(hub):
    # Found by an outside review: each cut-off /oauth/token body logged a traceback.
    start = len(hub.logs())
    for _ in range(3):
        await vanish_mid_body(
            hub.port,
            b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nab",
            linger=0.3,
        )
    await asyncio.sleep(0.5)
    later = hub.logs()[start:]
    assert "Traceback" not in later and "unhandled error" not in later
