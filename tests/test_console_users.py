"""The console's users, sessions, organization credentials and product deletion pages against
real hubs (SQLite and PostgreSQL): users found by email or external id only within their own
product environment (not another product's, even in a shared identity pool), a session
revoked in the console closing its real WebSocket at once and its refresh token refused while
the same user's session in the other product of the pool lives on, organization credentials
revoked and refused by the API at once, and a deleted product's keys refused at once.
Abuse first: roles that may not, other products' ids, odd input."""

from __future__ import annotations

import base64
import json
import re
import uuid

import httpx
import pytest

from tests.console_support import (
    accept,
    console_email,
    invite,
    post_form,
)
from tests.support import (
    PASSWORD,
    bearer,
    cable,
    create_product,
    login,
    product_headers,
    register,
    reset_through_mail,
)


def new_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def pool_products(hub) -> tuple[dict[str, str], dict[str, str]]:
    """Two products sharing one identity pool (log-ins shared, data separate)."""
    pool = f"pool-{uuid.uuid4().hex[:8]}"
    return (
        create_product(hub, None, "--identity-pool", pool),
        create_product(hub, None, "--identity-pool", pool),
    )


async def member_client(hub, console: httpx.AsyncClient, slug: str, role: str) -> httpx.AsyncClient:
    """A signed-in console client of a new member with `role` on the product."""
    client = httpx.AsyncClient(base_url=hub.url, timeout=30)
    link = await invite(console, slug, console_email(role), role)
    assert (await accept(client, link)).status_code == 303
    return client


def users_path(slug: str, suffix: str = "") -> str:
    return f"/console/products/{slug}/users{suffix}"


def listed_user_ids(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr id="user-(\d+)">', html)}


def session_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="session-([0-9a-f]+)">', html)


def sid_of(tokens: dict) -> str:
    """The session id a token pair names (its refresh token's `sid` claim)."""
    payload = tokens["refresh_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


async def refresh(client: httpx.AsyncClient, tokens: dict) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )


# -- abuse -----------------------------------------------------------------------------------


async def test_developers_and_viewers_see_users_but_cannot_revoke(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    owner = await register(client, new_email(), product=slug)
    user_id = owner["user"]["id"]
    for role in ("developer", "viewer"):
        member = await member_client(hub, console, slug, role)
        try:
            seen = await member.get(users_path(slug, f"/{user_id}"))
            allowed_to_see = role == "developer"
            assert seen.status_code == (200 if allowed_to_see else 403), role
            for path in (users_path(slug, f"/{user_id}/sessions/revoke"),):
                refused = await post_form(member, path, {"confirm": slug})
                assert refused.status_code == 403, (role, path)
                assert 'id="error-status">403' in refused.text
        finally:
            await member.aclose()
    # Nothing was revoked, nothing deleted.
    assert (await refresh(client, owner)).status_code == 200
    assert (await console.get(f"/console/products/{slug}")).status_code == 200


async def test_another_products_user_and_org_ids_are_404_pages(hub, console, client):
    ours, theirs = create_product(hub), create_product(hub)
    stranger = await register(client, new_email(), product=theirs["slug"])
    other_org = stranger["organization"]["id"]
    slug = ours["slug"]
    for path in (
        users_path(slug, f"/{stranger['user']['id']}"),
        users_path(slug, f"/{stranger['user']['id']}?env=test"),
        users_path(slug, "/999999999"),
        users_path(slug, "/abc"),
        f"/console/products/{slug}/organizations/{other_org}",
        f"/console/products/{slug}/organizations/x1",
    ):
        answer = await console.get(path)
        assert answer.status_code == 404, path
        assert stranger["user"]["email"] not in answer.text
    revoked = await post_form(
        console, users_path(slug, f"/{stranger['user']['id']}/sessions/revoke")
    )
    assert revoked.status_code == 404
    assert (await refresh(client, stranger)).status_code == 200


async def test_odd_search_input_is_a_4xx_page(hub, console):
    slug = create_product(hub)["slug"]
    for query in (
        "q=a%00b",
        "q=" + "a" * 5000,
        "after=-1",
        "after=abc",
        "after=99999999999999999999",
        "env=staging",
    ):
        answer = await console.get(users_path(slug, "?" + query))
        assert 400 <= answer.status_code < 500, (query, answer.status_code)
    # Bytes that are no UTF-8 (an unpaired surrogate) are searched as replacement characters.
    odd = await console.get(users_path(slug, "?q=%ED%A0%80"))
    assert odd.status_code == 200 and 'id="no-users"' in odd.text


async def test_a_user_of_another_product_in_the_same_pool_is_not_listed(hub, console, client):
    ours, theirs = pool_products(hub)
    email = new_email("pooled")
    theirs_only = await register(client, email, product=theirs["slug"])
    ours_user = await register(client, new_email("ours"), product=ours["slug"])
    page = await console.get(users_path(ours["slug"]))
    assert listed_user_ids(page.text) == {ours_user["user"]["id"]}
    searched = await console.get(users_path(ours["slug"], f"?q={email}"))
    assert listed_user_ids(searched.text) == set() and 'id="no-users"' in searched.text
    detail = await console.get(users_path(ours["slug"], f"/{theirs_only['user']['id']}"))
    assert detail.status_code == 404


# -- users, their sessions, revoking ----------------------------------------------------------


async def test_search_by_email_and_by_external_id_in_one_environment(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    email = new_email("Findable")
    registered = await register(client, email, product=slug)
    user_id = registered["user"]["id"]
    linked = await client.post(
        "/api/v1/users",
        headers=bearer(product["sk_live"]),
        json={"external_id": "crm-42_%", "email": email},
    )
    assert linked.status_code in (200, 201) and linked.json()["user"]["id"] == user_id
    other = await register(client, new_email("other"), product=slug)

    for query in (email.upper(), f"  {email[:9]}", "crm-42_%", "crm-4"):
        found = await console.get(users_path(slug), params={"q": query})
        assert found.status_code == 200, query
        assert listed_user_ids(found.text) == {user_id}, query
        assert 'id="user-search"' in found.text
    # LIKE's wildcards are plain characters in a search.
    assert listed_user_ids((await console.get(users_path(slug), params={"q": "%"})).text) == set()
    everyone = await console.get(users_path(slug))
    assert listed_user_ids(everyone.text) == {user_id, other["user"]["id"]}
    # The test environment holds neither.
    test_env = await console.get(users_path(slug), params={"env": "test"})
    assert listed_user_ids(test_env.text) == set() and 'id="env-shown">test' in test_env.text

    detail = await console.get(users_path(slug, f"/{user_id}"))
    assert detail.status_code == 200
    assert email.lower() in detail.text and "crm-42_%" in detail.text
    assert registered["refresh_token"] not in detail.text
    assert registered["access_token"] not in detail.text
    assert 'id="revoke-all-sessions"' in detail.text


async def test_pagination_follows_the_cursor(hub, console, client):
    product = create_product(hub)
    made = set()
    for n in range(3):
        made.add(
            (
                await client.post(
                    "/api/v1/users",
                    headers=bearer(product["sk_live"]),
                    json={"external_id": f"page-{n}", "email": new_email()},
                )
            ).json()["user"]["id"]
        )
    first = await console.get(users_path(product["slug"]))
    assert listed_user_ids(first.text) == made
    after = min(made)
    rest = await console.get(users_path(product["slug"]), params={"after": str(after)})
    assert listed_user_ids(rest.text) == made - {after}


async def test_revoking_a_session_drops_its_socket_and_refuses_its_refresh_token(
    hub, console, client, mailbox
):
    ours, theirs = pool_products(hub)
    email = new_email("tab")
    first = await register(client, email, product=ours["slug"])
    # A proven identity joins the other product of the pool: one user, a session in each.
    await reset_through_mail(client, mailbox, email, PASSWORD, product_headers(ours["slug"]))
    here = (await login(client, email, product=ours["slug"])).json()
    elsewhere = await register(client, email, product=theirs["slug"])
    user_id = first["user"]["id"]
    assert elsewhere["user"]["id"] == user_id

    tab = await cable(hub.url, here["access_token"])
    bystander = await cable(hub.url, elsewhere["access_token"])
    detail = await console.get(users_path(ours["slug"], f"/{user_id}"))
    sid = sid_of(here)
    assert sid in session_ids(detail.text) and sid_of(elsewhere) not in detail.text
    assert f'id="revoke-session-{sid}"' in detail.text

    revoked = await post_form(
        console, users_path(ours["slug"], f"/{user_id}/sessions/{sid}/revoke")
    )
    assert revoked.status_code == 303
    frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=2.0)
    assert frame == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    assert (await refresh(client, here)).status_code == 401
    # The same user's session in the other product of the pool lives on.
    with pytest.raises(AssertionError):
        await bystander.expect(lambda f: f.get("type") == "disconnect", within=0.5)
    assert (await refresh(client, elsewhere)).status_code == 200
    await bystander.close()

    after = await console.get(revoked.headers["location"])
    assert 'id="notice"' in after.text and sid not in session_ids(after.text)
    audit = await console.get(f"/console/products/{ours['slug']}/audit")
    assert "user.session_revoke" in audit.text


async def test_revoke_all_ends_every_session_of_the_user_in_this_product(hub, console, client):
    product = create_product(hub)
    email = new_email("many")
    first = await register(client, email, product=product["slug"])
    second = (await login(client, email, product=product["slug"])).json()
    bystander = await register(client, new_email("bystander"), product=product["slug"])
    user_id = first["user"]["id"]
    tabs = [await cable(hub.url, t["access_token"]) for t in (first, second)]
    page = await console.get(users_path(product["slug"], f"/{user_id}"))
    assert len(session_ids(page.text)) == 2

    done = await post_form(console, users_path(product["slug"], f"/{user_id}/sessions/revoke"))
    assert done.status_code == 303
    for tab in tabs:
        frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=2.0)
        assert frame["reason"] == "unauthorized"
    for tokens in (first, second):
        assert (await refresh(client, tokens)).status_code == 401
    assert (await refresh(client, bystander)).status_code == 200
    audit = await console.get(f"/console/products/{product['slug']}/audit")
    assert "user.sessions_revoke" in audit.text


# -- organizations and their credentials --------------------------------------------------------


async def new_workspace_token(client: httpx.AsyncClient, access: str) -> dict:
    body = {"workspace_api_token": {"name": "CI runner", "scopes": ["members:read"]}}
    created = await client.post("/api/v1/workspace_api_tokens", headers=bearer(access), json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def new_application(client: httpx.AsyncClient, access: str) -> dict:
    body = {"oauth_application": {"name": "CRM sync", "scopes": ["members:read"]}}
    created = await client.post("/api/v1/oauth_applications", headers=bearer(access), json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def client_credentials(client: httpx.AsyncClient, app: dict) -> httpx.Response:
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    )


def org_path(slug: str, suffix: str = "") -> str:
    return f"/console/products/{slug}/organizations{suffix}"


async def test_developers_see_org_credentials_but_cannot_revoke_them(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    owner = await register(client, new_email(), product=slug)
    org_id = owner["organization"]["id"]
    token = await new_workspace_token(client, owner["access_token"])
    developer = await member_client(hub, console, slug, "developer")
    try:
        seen = await developer.get(org_path(slug, f"/{org_id}"))
        assert seen.status_code == 200 and token["token_prefix"] in seen.text
        assert 'id="revoke-token-' not in seen.text
        refused = await post_form(
            developer, org_path(slug, f"/{org_id}/credentials/token/{token['id']}/revoke")
        )
        assert refused.status_code == 403
    finally:
        await developer.aclose()
    members = await client.get("/api/v1/organization/members", headers=bearer(token["token"]))
    assert members.status_code == 200


async def test_another_products_org_credentials_cannot_be_revoked(hub, console, client):
    ours, theirs = create_product(hub), create_product(hub)
    stranger = await register(client, new_email(), product=theirs["slug"])
    token = await new_workspace_token(client, stranger["access_token"])
    own = await register(client, new_email(), product=ours["slug"])
    for org_id in (stranger["organization"]["id"], own["organization"]["id"]):
        for kind in ("token", "extension", "bogus"):
            path = org_path(ours["slug"], f"/{org_id}/credentials/{kind}/{token['id']}/revoke")
            assert (await post_form(console, path)).status_code == 404, (org_id, kind)
    # The test environment's view of the product has no such organization either.
    in_test = org_path(ours["slug"], f"/{own['organization']['id']}?env=test")
    assert (await console.get(in_test)).status_code == 404
    members = await client.get("/api/v1/organization/members", headers=bearer(token["token"]))
    assert members.status_code == 200


async def test_revoked_org_credentials_are_refused_by_the_api_at_once(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    owner = await register(client, new_email(), product=slug)
    org_id = owner["organization"]["id"]
    token = await new_workspace_token(client, owner["access_token"])
    app = await new_application(client, owner["access_token"])
    assert (await client_credentials(client, app)).status_code == 200

    listed = await console.get(org_path(slug))
    assert f'id="org-{org_id}"' in listed.text and 'id="nav-organizations"' in listed.text
    page = await console.get(org_path(slug, f"/{org_id}"))
    assert token["token_prefix"] in page.text and app["client_id"] in page.text
    assert token["token"] not in page.text and app["client_secret"] not in page.text
    assert f'id="revoke-token-{token["id"]}"' in page.text

    revoked = await post_form(
        console, org_path(slug, f"/{org_id}/credentials/token/{token['id']}/revoke")
    )
    assert revoked.status_code == 303
    members = await client.get("/api/v1/organization/members", headers=bearer(token["token"]))
    assert members.status_code == 401
    gone = await post_form(
        console, org_path(slug, f"/{org_id}/credentials/application/{app['id']}/revoke")
    )
    assert gone.status_code == 303
    assert (await client_credentials(client, app)).status_code in (400, 401)
    # Revoked twice: there is nothing left to revoke.
    again = await post_form(
        console, org_path(slug, f"/{org_id}/credentials/token/{token['id']}/revoke")
    )
    assert again.status_code == 404
    audit = await console.get(f"/console/products/{slug}/audit")
    assert "org.token_revoke" in audit.text and "org.application_revoke" in audit.text


# -- deleting a product -------------------------------------------------------------------------


def delete_path(slug: str) -> str:
    return f"/console/products/{slug}/delete"


async def test_only_an_owner_deletes_and_a_wrong_confirmation_changes_nothing(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    for role in ("admin", "developer", "viewer"):
        member = await member_client(hub, console, slug, role)
        try:
            assert (await member.get(delete_path(slug))).status_code == 403, role
            refused = await post_form(member, delete_path(slug), {"confirm": slug})
            assert refused.status_code == 403, role
        finally:
            await member.aclose()
    form = await console.get(delete_path(slug))
    assert form.status_code == 200 and 'id="confirm-slug"' in form.text
    for wrong in ("", slug.upper(), slug + "x", "a\x00b"):
        answer = await post_form(console, delete_path(slug), {"confirm": wrong})
        assert answer.status_code in (400, 422), wrong
    assert (await console.get(f"/console/products/{slug}")).status_code == 200
    still = await client.get("/api/v1/users/1", headers=bearer(product["sk_live"]))
    assert still.status_code in (200, 404)  # the key still works (401 would mean refused)


async def test_deleting_a_product_refuses_its_keys_at_once_and_spares_the_others(
    hub, console, client, mailbox
):
    doomed, sibling = pool_products(hub)
    bystander = create_product(hub)
    slug = doomed["slug"]
    email = new_email("shared")
    first = await register(client, email, product=slug)
    await reset_through_mail(client, mailbox, email, PASSWORD, product_headers(slug))
    here = (await login(client, email, product=slug)).json()
    elsewhere = await register(client, email, product=sibling["slug"])
    assert elsewhere["user"]["id"] == first["user"]["id"]
    only_here = await register(client, new_email("only"), product=slug)
    token = await new_workspace_token(client, here["access_token"])
    tab = await cable(hub.url, here["access_token"])
    # The key is in use (and so cached) before the product goes.
    lookup = f"/api/v1/users/{first['user']['id']}"
    assert (await client.get(lookup, headers=bearer(doomed["sk_live"]))).status_code == 200

    deleted = await post_form(console, delete_path(slug), {"confirm": slug})
    assert deleted.status_code == 303 and deleted.headers["location"] == "/console/products"

    for key in ("sk_live", "sk_test"):
        refused = await client.get(lookup, headers=bearer(doomed[key]))
        assert refused.status_code == 401, key
    frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=2.0)
    assert frame["reason"] == "unauthorized"
    assert (await refresh(client, here)).status_code == 401
    assert (await refresh(client, only_here)).status_code == 401
    members = await client.get("/api/v1/organization/members", headers=bearer(token["token"]))
    assert members.status_code == 401
    # Its pages are gone (the guard answers a missing product as it answers a stranger's).
    for path in ("", "/users", "/keys", "/delete"):
        answer = await console.get(f"/console/products/{slug}{path}")
        assert answer.status_code in (403, 404), path
    listed = await console.get("/console/products")
    assert f'id="product-{slug}"' not in listed.text
    # The pool's other product and its user (the same identity) are untouched.
    assert (await refresh(client, elsewhere)).status_code == 200
    assert (await login(client, email, product=sibling["slug"])).status_code == 200
    sibling_lookup = f"/api/v1/users/{elsewhere['user']['id']}"
    assert (await client.get(sibling_lookup, headers=bearer(sibling["sk_live"]))).status_code == 200
    other = await register(client, new_email(), product=bystander["slug"])
    assert other["user"]["id"]


async def test_deleting_the_only_product_of_a_pool_deletes_its_users(hub, console, client):
    product = create_product(hub)
    slug = product["slug"]
    registered = await register(client, new_email("alone"), product=slug)
    published = await client.post(
        "/api/v1/notifications",
        headers=bearer(product["sk_live"]),
        json={"title": "Bye", "recipients": [{"user_id": registered["user"]["id"]}]},
    )
    assert published.status_code == 201, published.text
    assert (await post_form(console, delete_path(slug), {"confirm": slug})).status_code == 303
    # The slug is free again: a product made under it starts empty.
    again = create_product(hub, slug)
    assert (await login(client, registered["user"]["email"], product=slug)).status_code == 401
    assert listed_user_ids((await console.get(users_path(slug))).text) == set()
    assert again["slug"] == slug
