"""Register → login → me → refresh → logout against a real hub, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from tests.support import PASSWORD, bearer, login, product_headers, register


async def test_full_flow(client, email):
    registered = await register(client, email)
    assert registered["token_type"] == "Bearer"
    assert registered["expires_in"] == 3600
    assert registered["user"]["email"] == email
    assert registered["organization"]["role"] == "owner"
    assert registered["subscription"]["status"] == "active"

    response = await login(client, email)
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert "select_organization" not in tokens

    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["user"]["email"] == email
    assert me.json()["organization"]["id"] == registered["organization"]["id"]

    updated = await client.put(
        "/api/v1/auth/me",
        headers=bearer(tokens["access_token"]),
        json={"name": "Jan Novak Jr.", "locale": "cs"},
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["user"]["name"] == "Jan Novak Jr."
    assert updated.json()["user"]["locale"] == "cs"

    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(new["access_token"]))).is_success

    out = await client.post("/api/v1/auth/logout", headers=bearer(new["access_token"]))
    assert out.status_code == 204
    # The whole session is gone: its refresh token and its access tokens stop working.
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "auth.unauthorized"
    me_after = await client.get("/api/v1/auth/me", headers=bearer(new["access_token"]))
    assert me_after.status_code == 401
    # Another login session of the same user is untouched.
    assert (
        await client.get("/api/v1/auth/me", headers=bearer(registered["access_token"]))
    ).is_success


async def test_logout_with_refresh_token_body(client, email):
    tokens = await register(client, email)
    out = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert out.status_code == 204
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401


async def test_existing_email_joins_second_org_and_must_choose(client, email):
    first = await register(client, email, organization="First")
    second = await register(client, email, organization="Second")
    assert second["user"]["id"] == first["user"]["id"]  # same identity
    assert second["organization"]["id"] != first["organization"]["id"]  # separate data

    response = await login(client, email)
    assert response.status_code == 200
    body = response.json()
    assert body["select_organization"] is True
    assert "access_token" not in body
    assert [o["name"] for o in body["organizations"]] == ["First", "Second"]

    chosen = await client.post(
        "/api/v1/auth/login/select_org",
        headers=product_headers(),
        json={"login_token": body["login_token"], "organization_id": second["organization"]["id"]},
    )
    assert chosen.status_code == 200, chosen.text
    me = await client.get("/api/v1/auth/me", headers=bearer(chosen.json()["access_token"]))
    assert me.json()["organization"]["name"] == "Second"

    # The login token is single use.
    reuse = await client.post(
        "/api/v1/auth/login/select_org",
        headers=product_headers(),
        json={"login_token": body["login_token"], "organization_id": first["organization"]["id"]},
    )
    assert reuse.status_code == 401
    assert reuse.json()["error"]["code"] == "auth.invalid_login_token"


async def test_select_org_refuses_foreign_org_and_keeps_token(client, email):
    await register(client, email, organization="One")
    await register(client, email, organization="Two")
    stranger = await register(client, f"x{email}", organization="Not yours")
    body = (await login(client, email)).json()
    foreign = await client.post(
        "/api/v1/auth/login/select_org",
        headers=product_headers(),
        json={
            "login_token": body["login_token"],
            "organization_id": stranger["organization"]["id"],
        },
    )
    assert foreign.status_code == 404
    assert foreign.json()["error"]["code"] == "organization.not_found"
    ok = await client.post(
        "/api/v1/auth/login/select_org",
        headers=product_headers(),
        json={
            "login_token": body["login_token"],
            "organization_id": body["organizations"][0]["id"],
        },
    )
    assert ok.status_code == 200


async def test_register_existing_email_with_wrong_password_changes_nothing(client, email):
    await register(client, email, organization="Mine")
    denied = await register(
        client, email, password="WrongPass999!", organization="Theirs", expect=401
    )
    assert denied["error"]["code"] == "auth.invalid_credentials"
    body = (await login(client, email)).json()
    assert "select_organization" not in body  # still exactly one organization


async def test_login_failures_are_indistinguishable(client, email):
    await register(client, email)
    wrong_password = await login(client, email, "WrongPass999!")
    unknown_user = await login(client, f"nobody-{email}", PASSWORD)
    assert wrong_password.status_code == unknown_user.status_code == 401
    assert wrong_password.json() == unknown_user.json()
    assert wrong_password.json()["error"]["code"] == "auth.invalid_credentials"


async def test_user_of_one_product_cannot_log_into_another(hub, client, email):
    slug = f"other-{email.split('@')[0][5:]}"
    created = hub.cli("products", "create", "--slug", slug, "--name", "Other")
    assert created.returncode == 0, created.stderr
    await register(client, email)
    response = await login(client, email, product=slug)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.invalid_credentials"


async def test_refresh_rotation_and_reuse_revokes_family(client, email):
    tokens = await register(client, email)
    first = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert first.status_code == 200
    second = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]}
    )
    assert second.status_code == 200
    latest = second.json()

    # The first refresh token was retired two rotations ago: replaying it is theft.
    replay = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert replay.status_code == 401
    # ...and the whole family is revoked, including the newest tokens.
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": latest["refresh_token"]}
    )
    assert after.status_code == 401
    me = await client.get("/api/v1/auth/me", headers=bearer(latest["access_token"]))
    assert me.status_code == 401


async def test_concurrent_tabs_refreshing_at_once_both_succeed(client, email):
    tokens = await register(client, email)
    body = {"refresh_token": tokens["refresh_token"]}
    a, b = await asyncio.gather(
        client.post("/api/v1/auth/refresh", json=body),
        client.post("/api/v1/auth/refresh", json=body),
    )
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    # Both tabs can keep refreshing: they hold the same generation of the session.
    for tab in (a, b):
        nxt = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": tab.json()["refresh_token"]}
        )
        assert nxt.status_code == 200, nxt.text
        break


async def test_a_retired_refresh_token_is_accepted_once_within_the_grace(client, email):
    tokens = await register(client, email)
    retired = {"refresh_token": tokens["refresh_token"]}
    rotated = await client.post("/api/v1/auth/refresh", json=retired)
    assert rotated.status_code == 200
    # The other tab, a moment late, still holds the retired token: accepted once more...
    late = await client.post("/api/v1/auth/refresh", json=retired)
    assert late.status_code == 200, late.text
    # ...but only once, even inside the grace period: a third holder is a thief, and the
    # whole session goes, including the tokens both tabs got.
    again = await client.post("/api/v1/auth/refresh", json=retired)
    assert again.status_code == 401
    for tab in (rotated, late):
        current = {"refresh_token": tab.json()["refresh_token"]}
        assert (await client.post("/api/v1/auth/refresh", json=current)).status_code == 401
        me = await client.get("/api/v1/auth/me", headers=bearer(tab.json()["access_token"]))
        assert me.status_code == 401


async def test_two_concurrent_grace_uses_of_a_retired_token_are_one_reuse(client, email):
    tokens = await register(client, email)
    retired = {"refresh_token": tokens["refresh_token"]}
    rotated = await client.post("/api/v1/auth/refresh", json=retired)
    assert rotated.status_code == 200
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/refresh", json=retired) for _ in range(2))
    )
    assert sorted(a.status_code for a in answers) == [200, 401], [a.text for a in answers]
    # The loser is treated as reuse: the session is revoked for everyone.
    current = {"refresh_token": rotated.json()["refresh_token"]}
    assert (await client.post("/api/v1/auth/refresh", json=current)).status_code == 401


async def test_a_new_rotation_gives_its_retired_token_a_grace_use_of_its_own(client, email):
    tokens = await register(client, email)
    body = {"refresh_token": tokens["refresh_token"]}
    a, b = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json=body) for _ in range(2)))
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    # Two tabs, same generation: they race again on the next refresh, and both succeed again.
    nxt = {"refresh_token": a.json()["refresh_token"]}
    c, d = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json=nxt) for _ in range(2)))
    assert c.status_code == d.status_code == 200, (c.text, d.text)


async def test_refresh_refused_when_subscription_inactive(hub, client, email):
    tokens = await register(client, email)
    org_id = tokens["organization"]["id"]
    result = hub.cli("subscriptions", "set", str(org_id), "canceled")
    assert result.returncode == 0, result.stderr
    refused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "subscription.inactive"
    assert (await login(client, email)).status_code == 403

    # Reactivated, the same refresh token works again: refusal did not rotate or revoke it.
    assert hub.cli("subscriptions", "set", str(org_id), "active").returncode == 0
    ok = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert ok.status_code == 200, ok.text


async def test_unknown_product(client, email):
    response = await client.post(
        "/api/v1/auth/login",
        headers=product_headers("no-such-product"),
        json={"email": email, "password": PASSWORD},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "product.not_found"
    missing = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "product.required"


async def test_access_token_claims(client, email):
    import jwt

    tokens = await register(client, email)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "ES256" and header["kid"]
    for claim in (
        "sub",
        "org",
        "product",
        "scopes",
        "type",
        "iss",
        "exp",
        "jti",
        "iat",
        "sid",
        "env",
    ):
        assert claim in claims, claim
    assert claims["type"] == "access"
    assert claims["product"] == "demo"
    assert claims["env"] == "live"
    assert claims["scopes"] == ["notifications"]
    assert claims["exp"] - claims["iat"] == 3600
    refresh = jwt.decode(tokens["refresh_token"], options={"verify_signature": False})
    assert refresh["type"] == "refresh"
    assert refresh["sid"] == claims["sid"]
    assert 30 * 86400 - 5 <= refresh["exp"] - refresh["iat"] <= 30 * 86400
