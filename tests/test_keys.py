"""Product keys end to end: publishable, secret and restricted keys, each accepted where it
belongs and refused elsewhere; scopes; rotation; test/live isolation; product settings; and
the security alerts, delivered to a real local HTTP endpoint."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.support import (
    PASSWORD,
    AlertSink,
    api_user,
    bearer,
    cable,
    create_product,
    error_code,
    publish,
)
from tests.support import production_hub as start_production_hub


@pytest.fixture
async def product(hub):
    return create_product(hub)


@pytest.fixture
def alerts():
    sink = AlertSink()
    yield sink
    sink.close()


async def register_with_key(client, pk: str, email: str, **headers: str):
    return await client.post(
        "/api/v1/auth/register",
        headers={"X-Publishable-Key": pk, **headers},
        json={
            "email": email,
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "organization_name": "Acme",
        },
    )


async def restricted_key(client, secret_key: str, *scopes: str) -> str:
    response = await client.post(
        "/api/v1/keys",
        headers=bearer(secret_key),
        json={"name": "job", "scopes": list(scopes)},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["kind"] == "restricted" and body["key"].startswith("rk_live_")
    return body["key"]


async def set_webhook(client, secret_key: str, url: str) -> None:
    response = await client.patch(
        "/api/v1/product", headers=bearer(secret_key), json={"alert_webhook_url": url}
    )
    assert response.status_code == 200, response.text


# -- publishable keys --------------------------------------------------------------------


async def test_publishable_key_names_product_and_environment(client, product, email):
    assert len(product["pk_test"]) == len("pk_test_") + 43
    created = await register_with_key(
        client, product["pk_test"], email, **{"X-Product-Slug": "demo"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["user"]["email"] == email
    # The key made it a test user of this product: the live environment does not know them,
    # whatever the slug header said.
    login = {"email": email, "password": PASSWORD}
    as_test = await client.post(
        "/api/v1/auth/login", headers={"X-Publishable-Key": product["pk_test"]}, json=login
    )
    assert as_test.status_code == 200
    for headers in ({"X-Publishable-Key": product["pk_live"]}, {"X-Product-Slug": "demo"}):
        other = await client.post("/api/v1/auth/login", headers=headers, json=login)
        assert other.status_code == 401, headers


async def test_unknown_or_malformed_publishable_key_is_401(client):
    for key in ("pk_live_" + "A" * 43, "pk_nope_x", "garbage", ""):
        response = await client.post(
            "/api/v1/auth/login",
            headers={"X-Publishable-Key": key},
            json={"email": "a@example.com", "password": PASSWORD},
        )
        assert response.status_code == 401 and error_code(response) == "auth.unauthorized", key


async def test_rotating_the_publishable_key_invalidates_it_at_once(client, product, email):
    sk = product["sk_live"]
    keys = (await client.get("/api/v1/keys", headers=bearer(sk))).json()["keys"]
    [pk] = [k for k in keys if k["kind"] == "publishable" and k["revoked_at"] is None]
    rotated = await client.post(f"/api/v1/keys/{pk['id']}/rotate", headers=bearer(sk))
    assert rotated.status_code == 201, rotated.text
    new_pk = rotated.json()["key"]
    assert new_pk.startswith("pk_live_") and new_pk != product["pk_live"]
    old = await register_with_key(client, product["pk_live"], email)
    assert old.status_code == 401
    assert (await register_with_key(client, new_pk, email)).status_code == 201
    again = await client.post(f"/api/v1/keys/{pk['id']}/rotate", headers=bearer(sk))
    assert again.status_code == 409 and error_code(again) == "key.revoked"


# -- secret keys out of place ------------------------------------------------------------


async def test_secret_key_as_publishable_key_is_refused_and_alerted(client, product, email, alerts):
    await set_webhook(client, product["sk_live"], alerts.url)
    response = await register_with_key(client, product["sk_live"], email)
    assert response.status_code == 401 and error_code(response) == "auth.key_in_browser"
    alert = await alerts.wait_for("secret_key_in_browser")
    assert alert["product"] == product["slug"] and alert["env"] == "live"
    assert alert["details"]["prefix"] == product["sk_live"][:14]
    assert product["sk_live"] not in json.dumps(alerts.received)  # never the secret itself
    # Nothing was created.
    login = await client.post(
        "/api/v1/auth/login",
        headers={"X-Publishable-Key": product["pk_live"]},
        json={"email": email, "password": PASSWORD},
    )
    assert login.status_code == 401


async def test_secret_key_from_a_browser_origin_is_refused(hub, client, product, alerts):
    await set_webhook(client, product["sk_live"], alerts.url)
    external_id = f"x-{uuid.uuid4().hex[:8]}"
    response = await client.post(
        "/api/v1/users",
        headers={**bearer(product["sk_live"]), "Origin": hub.url},
        json={"external_id": external_id},
    )
    assert response.status_code == 401 and error_code(response) == "auth.key_in_browser"
    alert = await alerts.wait_for("secret_key_in_browser")
    assert alert["details"]["origin"] == hub.url
    # The same call from a server works, and shows the browser's call created nothing.
    created = await client.post(
        "/api/v1/users", headers=bearer(product["sk_live"]), json={"external_id": external_id}
    )
    assert created.status_code == 201


async def test_wrong_credential_kinds_on_the_server_api_are_401(client, product, email):
    user_id, access = await api_user(client, product["sk_live"])
    registered = await register_with_key(client, product["pk_live"], email)
    refresh = registered.json()["refresh_token"]
    for credential in (product["pk_live"], access, refresh, "wksp_" + "x" * 43, "sk_live_nope"):
        response = await client.post(
            "/api/v1/notifications",
            headers=bearer(credential),
            json={"user_id": user_id, "title": "Hi"},
        )
        assert response.status_code == 401 and error_code(response) == "auth.unauthorized"
    no_header = await client.post("/api/v1/users", json={"external_id": "x"})
    assert no_header.status_code == 401
    cookie = await client.post(
        "/api/v1/users", headers={"Cookie": "session=abc"}, json={"external_id": "x"}
    )
    assert cookie.status_code == 401


async def test_a_secret_key_is_no_user_token(client, product):
    response = await client.get("/api/v1/auth/me", headers=bearer(product["sk_live"]))
    assert response.status_code == 401


# -- restricted keys and scopes ----------------------------------------------------------


async def test_restricted_key_scopes(client, product):
    sk = product["sk_live"]
    user_id, _ = await api_user(client, sk)
    writer = await restricted_key(client, sk, "notifications:write")
    sent = await client.post(
        "/api/v1/notifications", headers=bearer(writer), json={"user_id": user_id, "title": "Hi"}
    )
    assert sent.status_code == 201
    denied = [
        await client.get(f"/api/v1/users/{user_id}/notifications", headers=bearer(writer)),
        await client.post("/api/v1/users", headers=bearer(writer), json={"external_id": "n"}),
        await client.get(f"/api/v1/users/{user_id}", headers=bearer(writer)),
        await client.get("/api/v1/keys", headers=bearer(writer)),
        await client.get("/api/v1/product", headers=bearer(writer)),
    ]
    for response in denied:
        assert response.status_code == 403 and error_code(response) == "auth.forbidden"
    reader = await restricted_key(client, sk, "notifications:read", "users:read")
    listed = await client.get(f"/api/v1/users/{user_id}/notifications", headers=bearer(reader))
    assert listed.status_code == 200 and listed.json()["notifications"][0]["title"] == "Hi"
    user = await client.get(f"/api/v1/users/{user_id}", headers=bearer(reader))
    assert user.status_code == 200 and user.json()["user"]["id"] == user_id


async def test_restricted_key_cannot_grant_more_than_it_has(client, product):
    sk = product["sk_live"]
    manager = await restricted_key(client, sk, "keys:write", "notifications:read")
    wider = await client.post(
        "/api/v1/keys",
        headers=bearer(manager),
        json={"name": "more", "scopes": ["notifications:write"]},
    )
    assert wider.status_code == 403
    narrower = await restricted_key(client, manager, "notifications:read")
    assert narrower.startswith("rk_live_")
    keys = (await client.get("/api/v1/keys", headers=bearer(manager))).json()["keys"]
    [secret] = [k for k in keys if k["kind"] == "secret" and k["revoked_at"] is None]
    steal = await client.post(f"/api/v1/keys/{secret['id']}/rotate", headers=bearer(manager))
    assert steal.status_code == 403
    [publishable] = [k for k in keys if k["kind"] == "publishable" and k["revoked_at"] is None]
    offline = await client.post(f"/api/v1/keys/{publishable['id']}/rotate", headers=bearer(manager))
    assert offline.status_code == 403 and error_code(offline) == "auth.forbidden"
    # The publishable key still names the product.
    still = await client.post(
        "/api/v1/auth/forgot_password",
        headers={"X-Publishable-Key": product["pk_live"]},
        json={"email": "nobody@example.com"},
    )
    assert still.status_code == 202
    # And the secret key still works.
    assert (await client.get("/api/v1/keys", headers=bearer(sk))).status_code == 200


async def test_unknown_scope_is_a_validation_error(client, product):
    response = await client.post(
        "/api/v1/keys",
        headers=bearer(product["sk_live"]),
        json={"name": "x", "scopes": ["everything"]},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"]["scopes"]["code"] == "scope.unknown"


async def test_revoking_and_rotating_keys(client, product):
    sk = product["sk_live"]
    job = await restricted_key(client, sk, "users:read")
    keys = (await client.get("/api/v1/keys", headers=bearer(sk))).json()["keys"]
    [entry] = [k for k in keys if k["kind"] == "restricted"]
    assert entry["key_prefix"] == job[:14] and "key" not in entry
    assert (
        await client.delete(f"/api/v1/keys/{entry['id']}", headers=bearer(sk))
    ).status_code == 204
    gone = await client.get("/api/v1/users/1", headers=bearer(job))
    assert gone.status_code == 401
    [secret] = [k for k in keys if k["kind"] == "secret"]
    assert secret["last_used_at"] is not None  # the listing call itself used it
    cannot = await client.delete(f"/api/v1/keys/{secret['id']}", headers=bearer(sk))
    assert cannot.status_code == 409 and error_code(cannot) == "key.rotate_instead"
    rotated = await client.post(f"/api/v1/keys/{secret['id']}/rotate", headers=bearer(sk))
    new_sk = rotated.json()["key"]
    assert (await client.get("/api/v1/keys", headers=bearer(sk))).status_code == 401
    assert (await client.get("/api/v1/keys", headers=bearer(new_sk))).status_code == 200


async def test_revoked_key_use_is_alerted(client, product, alerts):
    sk = product["sk_live"]
    await set_webhook(client, sk, alerts.url)
    job = await restricted_key(client, sk, "users:read")
    keys = (await client.get("/api/v1/keys", headers=bearer(sk))).json()["keys"]
    [entry] = [k for k in keys if k["kind"] == "restricted"]
    await client.delete(f"/api/v1/keys/{entry['id']}", headers=bearer(sk))
    assert (await client.get("/api/v1/keys", headers=bearer(job))).status_code == 401
    alert = await alerts.wait_for("revoked_key_used")
    assert alert["details"]["credential_id"] == entry["id"]


# -- test / live isolation ---------------------------------------------------------------


async def test_test_keys_never_touch_live_data(client, product):
    live_user, _ = await api_user(client, product["sk_live"])
    sk_test = product["sk_test"]
    sent = await client.post(
        "/api/v1/notifications", headers=bearer(sk_test), json={"user_id": live_user, "title": "x"}
    )
    assert sent.status_code == 422
    assert (
        await client.get(f"/api/v1/users/{live_user}", headers=bearer(sk_test))
    ).status_code == 404
    minted = await client.post(f"/api/v1/users/{live_user}/tokens", headers=bearer(sk_test))
    assert minted.status_code == 404
    test_keys = (await client.get("/api/v1/keys", headers=bearer(sk_test))).json()["keys"]
    assert {k["env"] for k in test_keys} == {"test"}


async def test_a_test_token_never_receives_live_notifications(hub, client, product, email):
    # One email registered in both environments: two identities that share nothing.
    users = {}
    for env in ("live", "test"):
        created = await register_with_key(client, product[f"pk_{env}"], email)
        assert created.status_code == 201
        users[env] = created.json()["user"]["id"]
    assert users["live"] != users["test"]
    login = await client.post(
        "/api/v1/auth/login",
        headers={"X-Publishable-Key": product["pk_test"]},
        json={"email": email, "password": PASSWORD},
    )
    assert login.json()["user"]["id"] == users["test"]
    tab = await cable(hub.url, login.json()["access_token"])
    await publish(client, product["sk_live"], users["live"], title="live only")
    await publish(client, product["sk_test"], users["test"], title="test only")
    message = await tab.next_message("new_notification")
    assert message["notification"]["title"] == "test only"
    await tab.close()


# -- product settings --------------------------------------------------------------------


async def test_origins_are_edited_through_the_server_api(client, product, email):
    sk = product["sk_live"]
    origin = "https://app.example.com"
    response = await client.patch(
        "/api/v1/product", headers=bearer(sk), json={"origins": [origin + "/", origin]}
    )
    assert response.status_code == 200 and response.json()["product"]["origins"] == [origin]
    allowed = await register_with_key(client, product["pk_live"], email, Origin=origin)
    assert allowed.status_code == 201
    assert allowed.headers["access-control-allow-origin"] == origin
    bad = await client.patch(
        "/api/v1/product", headers=bearer(sk), json={"origins": ["https://*.example.com"]}
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["details"]["origins[0]"]["code"] == "origin.invalid"
    unchanged = await client.get("/api/v1/product", headers=bearer(sk))
    assert unchanged.json()["product"]["origins"] == [origin]


async def test_a_product_patch_changes_only_the_fields_it_names(client, product):
    sk = bearer(product["sk_live"])
    origin = "https://app.example.com"
    reset = "https://app.example.com/reset?token={token}"
    first = await client.patch("/api/v1/product", headers=sk, json={"origins": [origin]})
    assert first.status_code == 200, first.text
    # Unknown fields are refused by name and change nothing, even next to a known one.
    for body in ({"origin": [origin]}, {"reset_url_template": reset, "colour": "red"}):
        refused = await client.patch("/api/v1/product", headers=sk, json=body)
        assert refused.status_code == 422, refused.text
        [(name, detail)] = refused.json()["error"]["details"].items()
        assert name in ("origin", "colour") and detail["code"] == "field.unknown"
    before = (await client.get("/api/v1/product", headers=sk)).json()["product"]
    assert before["reset_url_template"] is None and before["origins"] == [origin]
    # One field at a time, each without `origins` (which answered 422 origins: field.required).
    only_reset = await client.patch(
        "/api/v1/product", headers=sk, json={"reset_url_template": reset}
    )
    assert only_reset.status_code == 200, only_reset.text
    assert only_reset.json()["product"]["reset_url_template"] == reset
    only_flag = await client.patch(
        "/api/v1/product", headers=sk, json={"require_verified_email": True}
    )
    assert only_flag.status_code == 200, only_flag.text
    after = only_flag.json()["product"]
    assert after["require_verified_email"] is True and after["reset_url_template"] == reset
    assert after["origins"] == [origin]
    # An empty PATCH is a no-op that answers the settings.
    empty = await client.patch("/api/v1/product", headers=sk, json={})
    assert empty.status_code == 200 and empty.json()["product"] == after
    # A test key still may not change product-wide settings, however small the change.
    for body in ({}, {"reset_url_template": None}):
        test_key = await client.patch(
            "/api/v1/product", headers=bearer(product["sk_test"]), json=body
        )
        assert test_key.status_code == 403 and error_code(test_key) == "auth.forbidden"
    cleared = await client.patch("/api/v1/product", headers=sk, json={"reset_url_template": ""})
    assert cleared.json()["product"]["reset_url_template"] is None


# -- production: plain HTTP, rate limits, bursts -----------------------------------------


@pytest.fixture(scope="module")
def production_hub(tmp_path_factory, redis_url):
    limits = {
        "HUB_RATE_SERVER_KEY": "4/minute",
        "HUB_RATE_PUBLIC_PRODUCT": "3/minute",
        "HUB_WEBHOOKS_ALLOW_INTERNAL": "1",  # the alert sink is a local http:// endpoint
    }
    if redis_url:
        limits["REDIS_URL"] = redis_url  # the limits are shared through Redis
    with start_production_hub(tmp_path_factory.mktemp("prod-hub"), **limits) as server:
        yield server


async def test_plain_http_revokes_a_secret_key_in_production(production_hub, alerts):
    import httpx

    product = create_product(production_hub)
    https = {"X-Forwarded-Proto": "https"}  # from 127.0.0.1, a trusted proxy
    async with httpx.AsyncClient(base_url=production_hub.url) as client:
        sk = product["sk_live"]
        ok = await client.patch(
            "/api/v1/product",
            headers={**bearer(sk), **https},
            json={"alert_webhook_url": alerts.url},
        )
        assert ok.status_code == 200, ok.text
        plain = await client.get("/api/v1/keys", headers=bearer(sk))
        assert plain.status_code == 401 and error_code(plain) == "auth.key_compromised"
        await alerts.wait_for("key_compromised")
        again = await client.get("/api/v1/keys", headers={**bearer(sk), **https})
        assert again.status_code == 401  # revoked for good, HTTPS or not


async def test_a_proxy_spelling_https_otherwise_is_still_https(production_hub):
    """`X-Forwarded-Proto` from a trusted proxy is read case-insensitively, and of a chain
    the first (client-facing) hop counts: neither spelling revokes the key."""
    import httpx

    product = create_product(production_hub)
    sk = product["sk_live"]
    async with httpx.AsyncClient(base_url=production_hub.url) as client:
        for proto in ("HTTPS", "https, http", "https"):
            response = await client.get(
                "/api/v1/keys", headers={**bearer(sk), "X-Forwarded-Proto": proto}
            )
            assert response.status_code == 200, (proto, response.text)


async def test_per_key_and_per_product_rate_limits(production_hub):
    import httpx

    product = create_product(production_hub)
    https = {"X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(base_url=production_hub.url) as client:
        answers = [
            await client.get("/api/v1/keys", headers={**bearer(product["sk_live"]), **https})
            for _ in range(5)
        ]
        assert [a.status_code for a in answers] == [200, 200, 200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # Another key of the product has its own budget.
        other = await client.get("/api/v1/keys", headers={**bearer(product["sk_test"]), **https})
        assert other.status_code == 200
        logins = [
            await client.post(
                "/api/v1/auth/login",
                headers={"X-Publishable-Key": product["pk_live"]},
                json={"email": f"n{i}@example.com", "password": PASSWORD},
            )
            for i in range(4)
        ]
        assert [r.status_code for r in logins] == [401, 401, 401, 429]
        assert error_code(logins[-1]) == "rate_limited"


async def test_a_burst_of_unknown_keys_is_logged(production_hub):
    import httpx

    async with httpx.AsyncClient(base_url=production_hub.url) as client:
        for i in range(25):
            await client.get("/api/v1/keys", headers=bearer(f"sk_live_{i:043d}"))
    assert "security alert failed_key_lookups" in production_hub.logs()


async def test_forwarded_proto_from_an_untrusted_peer_is_not_believed(tmp_path, redis_url):
    import httpx

    # The proxy the hub trusts is elsewhere: this client's "https" claim counts for nothing.
    with start_production_hub(tmp_path, HUB_TRUSTED_PROXIES="10.9.9.9") as server:
        product = create_product(server)
        async with httpx.AsyncClient(base_url=server.url) as client:
            claimed = await client.get(
                "/api/v1/keys",
                headers={**bearer(product["sk_live"]), "X-Forwarded-Proto": "https"},
            )
        assert claimed.status_code == 401 and error_code(claimed) == "auth.key_compromised"


async def test_production_alert_webhooks_must_be_public_https(tmp_path):
    import httpx

    with start_production_hub(tmp_path) as server:
        product = create_product(server)
        headers = {**bearer(product["sk_live"]), "X-Forwarded-Proto": "https"}
        async with httpx.AsyncClient(base_url=server.url) as client:
            for url in (
                "http://hooks.example.com/alerts",
                "https://127.0.0.1/alerts",
                "https://169.254.169.254/latest/meta-data",
                "https://10.0.0.5/alerts",
                "https://[::1]/alerts",
                "https://localhost/alerts",
            ):
                refused = await client.patch(
                    "/api/v1/product", headers=headers, json={"alert_webhook_url": url}
                )
                assert refused.status_code == 422, url
                details = refused.json()["error"]["details"]
                expected = (
                    "field.not_url" if url.startswith("http:") else "webhook.internal_address"
                )
                assert details["alert_webhook_url"]["code"] == expected, url
            accepted = await client.patch(
                "/api/v1/product",
                headers=headers,
                json={"alert_webhook_url": "https://hooks.example.com/alerts"},
            )
            assert accepted.status_code == 200
            stored = accepted.json()["product"]["alert_webhook_url"]
            assert stored == "https://hooks.example.com/alerts"
            # Link templates in mails are https only in production, too.
            for field in ("verify_url_template", "reset_url_template"):
                plain = {field: "http://app.example.com/link?token={token}"}
                refused = await client.patch("/api/v1/product", headers=headers, json=plain)
                assert refused.status_code == 422, (field, refused.text)
                code = refused.json()["error"]["details"][field]["code"]
                assert code == "field.not_url_template"
                https = {field: "https://app.example.com/link?token={token}"}
                linked = await client.patch("/api/v1/product", headers=headers, json=https)
                assert linked.status_code == 200 and linked.json()["product"][field] == https[field]
