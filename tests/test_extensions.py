"""Extension keys as the Kiket seed describes them: installing an extension from a manifest
issues an `ext_…` key scoped to the organization and to the manifest's scopes (never more than
the installer holds); `POST /api/v1/extensions/{id}/secrets` rotates it (the old key stops at
once), uninstalling revokes it. Abuse first, then the life of one extension."""

from __future__ import annotations

import httpx
import pytest

from tests.support import (
    CableClient,
    api_user,
    bearer,
    create_product,
    error_code,
    product_headers,
    register_owner,
    reset_through_mail,
)


@pytest.fixture
async def product(hub):
    return create_product(hub)


@pytest.fixture
async def owner(client, product, email):
    return await register_owner(client, product, email)


async def install(client, credential: str, scopes: list[str], **manifest) -> httpx.Response:
    body = {"extension": {"name": "Timesheets", "scopes": scopes, **manifest}}
    return await client.post("/api/v1/extensions", headers=bearer(credential), json=body)


async def installed(client, credential: str, scopes: list[str], **manifest) -> dict:
    response = await install(client, credential, scopes, **manifest)
    assert response.status_code == 201, response.text
    return response.json()


async def members(client, credential: str) -> httpx.Response:
    return await client.get("/api/v1/organization/members", headers=bearer(credential))


async def send(client, credential: str, user_id: int) -> httpx.Response:
    return await client.post(
        "/api/v1/notifications",
        headers=bearer(credential),
        json={"user_id": user_id, "title": "From an extension"},
    )


# -- abuse -------------------------------------------------------------------------------


async def test_another_organizations_owner_cannot_see_rotate_or_uninstall(
    client, product, owner, email
):
    mine = await installed(client, owner["access_token"], ["members:read"])
    other = await register_owner(client, product, "other-" + email)
    theirs = other["access_token"]
    listed = await client.get("/api/v1/extensions", headers=bearer(theirs))
    assert listed.status_code == 200 and listed.json() == {"extensions": []}
    rotated = await client.post(f"/api/v1/extensions/{mine['id']}/secrets", headers=bearer(theirs))
    assert rotated.status_code == 404 and error_code(rotated) == "extension.not_found"
    removed = await client.delete(f"/api/v1/extensions/{mine['id']}", headers=bearer(theirs))
    assert removed.status_code == 404 and error_code(removed) == "extension.not_found"
    # Nothing happened to it: the key still works, in its own organization only.
    seen = await members(client, mine["key"])
    assert seen.status_code == 200
    assert [m["id"] for m in seen.json()["members"]] == [owner["user"]["id"]]
    for path in ("/api/v1/extensions/0/secrets", "/api/v1/extensions/99999999999999999999/secrets"):
        missing = await client.post(path, headers=bearer(owner["access_token"]))
        assert missing.status_code == 404 and error_code(missing) == "extension.not_found"


async def test_an_extension_key_stays_in_its_organization(client, product, owner, email):
    key = (await installed(client, owner["access_token"], ["notifications:write"]))["key"]
    other = await register_owner(client, product, "other-" + email)
    foreign = await send(client, key, other["user"]["id"])
    assert foreign.status_code == 422 and error_code(foreign) == "notification.unknown_recipients"
    assert (await send(client, key, owner["user"]["id"])).status_code == 201
    # Org B's owner's notifications are not A's to read, whatever the key's scopes.
    reader = (await installed(client, owner["access_token"], ["notifications:read"]))["key"]
    peek = await client.get(
        f"/api/v1/users/{other['user']['id']}/notifications", headers=bearer(reader)
    )
    assert peek.status_code == 404 and error_code(peek) == "user.not_found"
    listed = await client.get("/api/v1/extensions", headers=bearer(other["access_token"]))
    assert listed.json()["extensions"] == []


async def test_an_installer_grants_no_scope_it_does_not_hold(client, product, owner):
    access = owner["access_token"]
    reader = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=bearer(access),
        json={"workspace_api_token": {"name": "reader", "scopes": ["notifications:read"]}},
    )
    assert reader.status_code == 201, reader.text
    narrow = reader.json()["token"]
    beyond = await install(client, narrow, ["members:read", "notifications:read"])
    assert beyond.status_code == 403 and error_code(beyond) == "auth.forbidden"
    named = beyond.json()["error"]["details"]["scopes"]
    assert named["code"] == "scope.beyond_installer" and "members:read" in named["message"]
    assert "notifications:read" not in named["message"]
    # Within its scopes it is still no manager: installing is for owners and admins.
    within = await install(client, narrow, ["notifications:read"])
    assert within.status_code == 403 and error_code(within) == "auth.forbidden"
    _, member_access = await api_user(client, product["sk_live"])  # a plain member elsewhere
    assert (await install(client, member_access, ["members:read"])).status_code == 403
    for credential in (product["sk_live"], product["pk_live"], "garbage", "ext_" + "x" * 43):
        refused = await install(client, credential, ["members:read"])
        assert refused.status_code == 401, credential
    # An extension never installs another, nor manages any credential, even with `admin`.
    admin_key = (await installed(client, access, ["admin"]))["key"]
    assert (await install(client, admin_key, ["members:read"])).status_code == 401
    for path in (
        "/api/v1/extensions",
        "/api/v1/workspace_api_tokens",
        "/api/v1/oauth_applications",
    ):
        assert (await client.get(path, headers=bearer(admin_key))).status_code == 401, path
    assert (await members(client, admin_key)).status_code == 200  # `admin`: every org scope
    # A workspace token with `admin` holds every scope and may install.
    full = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=bearer(access),
        json={"workspace_api_token": {"name": "ops", "scopes": ["admin"]}},
    )
    made = await installed(client, full.json()["token"], ["members:read", "notifications:write"])
    assert made["installed_by"]["id"] == owner["user"]["id"]
    listed = (await client.get("/api/v1/extensions", headers=bearer(access))).json()["extensions"]
    assert len(listed) == 2  # the refused attempts installed nothing


async def test_an_extension_key_is_refused_off_the_organization_api(hub, client, product, owner):
    key = (await installed(client, owner["access_token"], ["admin"]))["key"]
    for method, path, body in (
        ("POST", "/api/v1/users", {"external_id": "x"}),  # product endpoints
        ("GET", "/api/v1/keys", None),
        ("GET", "/api/v1/product", None),
        ("GET", "/api/v1/auth/me", None),  # user endpoints
        ("GET", "/api/v1/notifications", None),
    ):
        response = await client.request(method, path, headers=bearer(key), json=body)
        assert response.status_code == 401, (path, response.text)
        assert error_code(response) == "auth.unauthorized"
    tab = await CableClient.connect(hub.url, key)
    assert await tab.recv() == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    # From a browser it is refused (and alerted) like any server credential, not revoked.
    browser = await client.get(
        "/api/v1/organization/members",
        headers={**bearer(key), "Origin": "https://app.example.com"},
    )
    assert browser.status_code == 401 and error_code(browser) == "auth.key_in_browser"
    assert (await members(client, key)).status_code == 200


async def test_odd_manifests_are_refused_in_the_standard_shape(client, owner):
    access = owner["access_token"]
    cases = [
        ({"name": "x", "scopes": ["members:read", "members:read"]}, "scopes", "scope.duplicate"),
        ({"name": "x", "scopes": ["issues:read"]}, "scopes", "scope.unknown"),
        ({"name": "x", "scopes": "members:read"}, "scopes", "field.not_list"),
        ({"name": "x", "scopes": [1]}, "scopes", "field.not_list"),
        ({"name": "x", "scopes": {"members:read": True}}, "scopes", "field.not_list"),
        ({"name": "x", "scopes": []}, "scopes", "field.required"),
        ({"name": "x"}, "scopes", "field.required"),
        ({"name": "x", "scopes": ["x" * 10_000]}, "scopes", "scope.unknown"),
        ({"name": "", "scopes": ["members:read"]}, "name", "field.required"),
        ({"name": "y" * 201, "scopes": ["members:read"]}, "name", "field.too_long"),
        ({"name": "two\nlines", "scopes": ["members:read"]}, "name", "field.invalid_characters"),
        ({"name": "bell\x07", "scopes": ["members:read"]}, "name", "field.invalid_characters"),
        ({"name": 7, "scopes": ["members:read"]}, "name", "field.not_string"),
        (
            {"name": "x", "scopes": ["members:read"], "webhook_url": "ftp://h/x"},
            "webhook_url",
            "field.not_url",
        ),
        (
            {"name": "x", "scopes": ["members:read"], "webhook_url": 5},
            "webhook_url",
            "field.not_url",
        ),
        (
            {"name": "x", "scopes": ["members:read"], "webhook_url": "https://" + "h" * 3000},
            "webhook_url",
            "field.not_url",
        ),
    ]
    for manifest, field, code in cases:
        response = await client.post(
            "/api/v1/extensions", headers=bearer(access), json={"extension": manifest}
        )
        assert response.status_code == 422, (manifest, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation.failed" and error["message"]
        assert error["details"][field]["code"] == code, (manifest, error)
    for raw in (
        b'{"extension": {"name": "nul\\u0000", "scopes": ["members:read"]}}',
        b'{"extension": {"name": "half \\ud800", "scopes": ["members:read"]}}',
        b'{"extension": {"name": "x", "scopes": ["members:read"], "webhook_url": NaN}}',
        b'{"extension": ' * 5000 + b"{}" + b"}" * 5000,
        b"not json",
    ):
        response = await client.post(
            "/api/v1/extensions",
            headers={**bearer(access), "Content-Type": "application/json"},
            content=raw,
        )
        assert response.status_code in (400, 413, 422), (raw[:60], response.text)
        assert response.json()["error"]["code"]
    huge = await client.post(
        "/api/v1/extensions",
        headers=bearer(access),
        json={"extension": {"name": "z" * 5_000_000, "scopes": ["members:read"]}},
    )
    assert huge.status_code in (413, 422) and huge.json()["error"]["code"]
    for wrong in ({"name": "x", "scopes": ["members:read"]}, {"extension": "x"}, {"extension": []}):
        response = await client.post("/api/v1/extensions", headers=bearer(access), json=wrong)
        assert response.status_code == 422, wrong
    listed = await client.get("/api/v1/extensions", headers=bearer(access))
    assert listed.json()["extensions"] == []  # nothing was installed


async def test_production_refuses_internal_webhooks_and_revokes_keys_sent_over_http(tmp_path):
    from tests.support import production_hub

    https = {"X-Forwarded-Proto": "https"}  # from 127.0.0.1, a trusted proxy
    with production_hub(tmp_path) as server:
        product = create_product(server)
        async with httpx.AsyncClient(base_url=server.url, headers=https) as secure:
            owner = await register_owner(secure, product, "owner@example.com")
            access = owner["access_token"]
            for url, code in (
                ("https://127.0.0.1/hook", "webhook.internal_address"),
                ("https://169.254.169.254/latest/meta-data", "webhook.internal_address"),
                ("https://[::1]/hook", "webhook.internal_address"),
                ("https://localhost/hook", "webhook.internal_address"),
                ("https://10.0.0.5/hook", "webhook.internal_address"),
                ("http://hooks.example.com/hook", "field.not_url"),  # https only
            ):
                refused = await install(secure, access, ["members:read"], webhook_url=url)
                assert refused.status_code == 422, (url, refused.text)
                assert refused.json()["error"]["details"]["webhook_url"]["code"] == code, url
            made = await installed(
                secure, access, ["members:read"], webhook_url="https://hooks.example.com/hook"
            )
            assert made["webhook_url"] == "https://hooks.example.com/hook"
            assert (await members(secure, made["key"])).status_code == 200
            async with httpx.AsyncClient(base_url=server.url) as plain:
                exposed = await members(plain, made["key"])
                assert exposed.status_code == 401 and error_code(exposed) == "auth.key_compromised"
            # Compromised: uninstalled for good, HTTPS or not.
            assert (await members(secure, made["key"])).status_code == 401
            listed = await secure.get("/api/v1/extensions", headers=bearer(access))
            assert listed.json()["extensions"] == []


async def test_an_organization_installs_at_most_the_limit(client, owner):
    from auth.extensions import MAX_EXTENSIONS_PER_ORGANIZATION

    access = owner["access_token"]
    made = [
        await installed(client, access, ["members:read"], name=f"ext {n}")
        for n in range(MAX_EXTENSIONS_PER_ORGANIZATION)
    ]
    full = await install(client, access, ["members:read"])
    assert full.status_code == 409 and error_code(full) == "extension.too_many"
    removed = await client.delete(f"/api/v1/extensions/{made[0]['id']}", headers=bearer(access))
    assert removed.status_code == 204
    await installed(client, access, ["members:read"])  # uninstalling makes room


async def test_a_pre_hijackers_extension_is_uninstalled_by_the_owners_first_reset(
    client, product, email, mailbox
):
    """Someone registered the address before its owner proved it and installed an extension:
    the owner's first password reset uninstalls it with the squatter's other credentials."""
    squatter = await register_owner(client, product, email)
    key = (await installed(client, squatter["access_token"], ["members:read"]))["key"]
    assert (await members(client, key)).status_code == 200
    await reset_through_mail(
        client, mailbox, email, "OwnerPass456!", product_headers(product["slug"])
    )
    assert (await members(client, key)).status_code == 401


# -- the life of an extension ------------------------------------------------------------


async def test_install_use_rotate_and_uninstall(client, owner):
    access = owner["access_token"]
    answer = await install(
        client, access, ["members:read"], name="Timesheets – sync", webhook_url=None
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    made = answer.json()
    key = made["key"]
    assert key.startswith("ext_") and len(key) == 4 + 43
    assert made["key_prefix"] == key[:12]
    assert made["name"] == "Timesheets – sync" and made["scopes"] == ["members:read"]
    assert made["webhook_url"] is None and made["rotated_at"] is None
    assert made["last_used_at"] is None and made["created_at"]
    assert made["installed_by"] == {"id": owner["user"]["id"], "name": "Avery"}

    # Within its scopes it works; beyond them it is 403.
    seen = await members(client, key)
    assert seen.status_code == 200
    assert [m["id"] for m in seen.json()["members"]] == [owner["user"]["id"]]
    beyond = await send(client, key, owner["user"]["id"])
    assert beyond.status_code == 403 and error_code(beyond) == "auth.forbidden"

    [entry] = (await client.get("/api/v1/extensions", headers=bearer(access))).json()["extensions"]
    assert entry["id"] == made["id"] and "key" not in entry
    assert entry["last_used_at"] is not None  # used above

    rotated = await client.post(f"/api/v1/extensions/{made['id']}/secrets", headers=bearer(access))
    assert rotated.status_code == 201, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    fresh = rotated.json()
    assert fresh["id"] == made["id"] and fresh["key"] != key and fresh["key"].startswith("ext_")
    assert fresh["key_prefix"] == fresh["key"][:12] and fresh["rotated_at"] is not None
    stale = await members(client, key)
    assert stale.status_code == 401 and error_code(stale) == "auth.unauthorized"
    assert (await members(client, fresh["key"])).status_code == 200
    [entry] = (await client.get("/api/v1/extensions", headers=bearer(access))).json()["extensions"]
    assert "key" not in entry and entry["key_prefix"] == fresh["key_prefix"]  # shown once

    removed = await client.delete(f"/api/v1/extensions/{made['id']}", headers=bearer(access))
    assert removed.status_code == 204
    assert (await members(client, fresh["key"])).status_code == 401
    again = await client.delete(f"/api/v1/extensions/{made['id']}", headers=bearer(access))
    assert again.status_code == 404 and error_code(again) == "extension.not_found"
    after = await client.post(f"/api/v1/extensions/{made['id']}/secrets", headers=bearer(access))
    assert after.status_code == 404  # an uninstalled extension gets no new key
    listed = await client.get("/api/v1/extensions", headers=bearer(access))
    assert listed.json()["extensions"] == []


async def test_a_rotated_key_stops_at_once_on_another_hub_process(hub, client, owner, tmp_path):
    """Two processes of one deployment: rotating on one refuses the old key on the other at
    once (extension keys are read from SQL on every request, never cached)."""
    twin = hub.twin(tmp_path)
    twin.start()
    try:
        access = owner["access_token"]
        made = await installed(client, access, ["members:read"])
        async with httpx.AsyncClient(base_url=twin.url, timeout=30) as other:
            assert (await members(other, made["key"])).status_code == 200
            rotated = await client.post(
                f"/api/v1/extensions/{made['id']}/secrets", headers=bearer(access)
            )
            assert rotated.status_code == 201
            assert (await members(other, made["key"])).status_code == 401
            fresh = rotated.json()["key"]
            assert (await members(other, fresh)).status_code == 200
            removed = await other.delete(f"/api/v1/extensions/{made['id']}", headers=bearer(access))
            assert removed.status_code == 204
            assert (await members(client, fresh)).status_code == 401
    finally:
        twin.stop()
