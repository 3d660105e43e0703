"""The role matrix: the README's table says what `console.roles.MATRIX`
says, and the server enforces it: for each role and each action the console has a page or
form for, a real member with that role, signed in over HTTP, is allowed (2xx/3xx) or gets
the 403 page. A console admin acts as owner; a non-member gets 403 everywhere; a browser
without a session is sent to sign in."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from console.roles import ACTIONS, MATRIX, ROLES
from tests.console_support import (
    accept,
    console_email,
    create_console_product,
    invite,
    page_csrf,
    sign_in,
)
from tests.support import register

ROLES_MD = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_table_is_the_matrix():
    table = {}
    for line in ROLES_MD.read_text().splitlines():
        match = re.match(r"^\| .*\(`([a-z_.]+)`\) \|(.*)\|$", line)
        if match:
            cells = [c.strip() for c in match.group(2).split("|")]
            assert set(cells) <= {"yes", "no"}, line
            table[match.group(1)] = frozenset(
                r for r, c in zip(ROLES, cells, strict=True) if c == "yes"
            )
    header = next(line for line in ROLES_MD.read_text().splitlines() if line.startswith("| Action"))
    assert [c.strip() for c in header.strip("|").split("|")][1:] == list(ROLES)
    assert table == MATRIX
    assert set(ACTIONS) == set(MATRIX)


Call = Callable[[httpx.AsyncClient, str], Awaitable[httpx.Response]]


async def _post(client: httpx.AsyncClient, path: str, fields: dict[str, str]) -> httpx.Response:
    token = await page_csrf(client)
    return await client.post(path, data={"csrf_token": token, **fields})


def _get(suffix: str) -> Call:
    async def call(client: httpx.AsyncClient, slug: str) -> httpx.Response:
        return await client.get(f"/console/products/{slug}{suffix}")

    return call


def _form(suffix: str, fields: Callable[[], dict[str, str]]) -> Call:
    async def call(client: httpx.AsyncClient, slug: str) -> httpx.Response:
        return await _post(client, f"/console/products/{slug}{suffix}", fields())

    return call


async def _test_notification(client: httpx.AsyncClient, slug: str) -> httpx.Response:
    """Send a test notification to a user registered just now (through the product's own
    sign-up), so an allowed role's send succeeds."""
    email = console_email("recipient")
    async with httpx.AsyncClient(base_url=client.base_url, timeout=30) as anonymous:
        await register(anonymous, email, product=slug)
    fields = {"env": "live", "recipient": email, "title": "Matrix"}
    return await _post(client, f"/console/products/{slug}/notifications/test", fields)


ENDPOINTS: dict[str, Call] = {
    "product.view": _get(""),
    "keys.view": _get("/keys"),
    "keys.manage": _form(
        "/keys", lambda: {"name": "matrix", "env": "test", "scope:users:read": "1"}
    ),
    "origins.edit": _form("/origins", lambda: {"origins": "https://app.example.com"}),
    "settings.edit": _form(
        "/settings",
        lambda: {
            "default_locale": "en",
            "mail_from_name": "Matrix",
            "mail_from_address": "",
            "reset_url_template": "",
            "verify_url_template": "",
            "alert_webhook_url": "",
        },
    ),
    "members.manage": _form(
        "/members/invite", lambda: {"email": console_email("invitee"), "role": "viewer"}
    ),
    "audit.view": _get("/audit"),
    "notifications.test": _test_notification,
}


async def _product_user(client: httpx.AsyncClient, slug: str) -> dict:
    """A user registered through the public API on the product (a session, an organization)."""
    email = f"u-{uuid.uuid4().hex[:10]}@example.com"
    password = "User-Pass-123!"
    registered = await client.post(
        "/api/v1/auth/register",
        headers={"X-Product-Slug": slug},
        json={
            "email": email,
            "password": password,
            "password_confirmation": password,
            "name": "Matrix User",
            "organization_name": "Matrix Org",
        },
    )
    assert registered.status_code == 201, registered.text
    return registered.json()


async def _revoke_user_sessions(client: httpx.AsyncClient, slug: str) -> httpx.Response:
    user = await _product_user(client, slug)
    path = f"/console/products/{slug}/users/{user['user']['id']}/sessions/revoke"
    return await _post(client, path, {})


async def _revoke_workspace_token(client: httpx.AsyncClient, slug: str) -> httpx.Response:
    user = await _product_user(client, slug)
    body = {"workspace_api_token": {"name": "matrix", "scopes": ["members:read"]}}
    created = await client.post(
        "/api/v1/workspace_api_tokens",
        headers={"Authorization": f"Bearer {user['access_token']}"},
        json=body,
    )
    assert created.status_code == 201, created.text
    org_id, token_id = user["organization"]["id"], created.json()["id"]
    path = f"/console/products/{slug}/organizations/{org_id}/credentials/token/{token_id}/revoke"
    return await _post(client, path, {})


ENDPOINTS["users.view"] = _get("/users?q=example")
ENDPOINTS["users.revoke_sessions"] = _revoke_user_sessions
ENDPOINTS["org_credentials.revoke"] = _revoke_workspace_token
# The confirmation page (the POST itself would delete the product under the matrix's feet).
ENDPOINTS["product.delete"] = _get("/delete")


def test_every_action_of_the_matrix_is_tested_through_its_page():
    assert set(ENDPOINTS) == set(MATRIX)


@pytest.fixture
async def team(hub, admin) -> AsyncIterator[tuple[str, dict[str, httpx.AsyncClient]]]:
    """A product made by the admin and one signed-in client per role, each a member made
    through an accepted invitation; plus the admin and an outsider with a product of its own."""
    slug = f"m-{uuid.uuid4().hex[:8]}"
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        clients["console admin"] = httpx.AsyncClient(base_url=hub.url, timeout=30)
        assert (await sign_in(clients["console admin"], admin)).status_code == 303
        await create_console_product(clients["console admin"], slug)
        for role in [*ROLES, "outsider"]:
            client = httpx.AsyncClient(base_url=hub.url, timeout=30)
            clients[role] = client
            if role == "outsider":  # a member of another product only
                other = f"o-{uuid.uuid4().hex[:8]}"
                await create_console_product(clients["console admin"], other)
                link = await invite(clients["console admin"], other, console_email(role), "owner")
            else:
                link = await invite(clients["console admin"], slug, console_email(role), role)
            accepted = await accept(client, link)
            assert accepted.status_code == 303, accepted.text
        yield slug, clients
    finally:
        for client in clients.values():
            await client.aclose()


@pytest.mark.parametrize("action", sorted(ENDPOINTS))
async def test_each_role_is_allowed_or_refused_as_the_matrix_says(team, action):
    slug, clients = team
    for role in [*ROLES, "console admin", "outsider"]:
        answer = await ENDPOINTS[action](clients[role], slug)
        acts_as = "owner" if role == "console admin" else role
        if acts_as in MATRIX[action]:
            assert 200 <= answer.status_code < 400, (role, action, answer.text)
        else:
            assert answer.status_code == 403, (role, action, answer.status_code)
            assert 'id="error-status">403' in answer.text


async def test_without_a_session_every_page_sends_the_browser_to_sign_in(hub, team):
    slug, _ = team
    async with httpx.AsyncClient(base_url=hub.url) as anonymous:
        for path in ("", "/keys", "/members", "/audit"):
            answer = await anonymous.get(f"/console/products/{slug}{path}")
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/sign-in"
        posted = await anonymous.post(f"/console/products/{slug}/origins", data={"origins": ""})
        assert posted.status_code == 303 and posted.headers["location"] == "/console/sign-in"


async def test_an_admin_member_cannot_grant_or_remove_owner(team):
    slug, clients = team
    refused = await _post(
        clients["admin"],
        f"/console/products/{slug}/members/invite",
        {"email": console_email("would-be-owner"), "role": "owner"},
    )
    assert refused.status_code == 403
    members = await clients["admin"].get(f"/console/products/{slug}/members")
    owner_ids = re.findall(
        r'<tr id="member-(\d+)">\s*<td>[^<]*</td>\s*<td>owner</td>', members.text
    )
    assert owner_ids
    for path in ("role", "remove"):
        answer = await _post(
            clients["admin"],
            f"/console/products/{slug}/members/{owner_ids[0]}/{path}",
            {"role": "viewer"},
        )
        assert answer.status_code == 403, path
    # The owner may change the admin's role.
    admin_id = re.findall(r'<tr id="member-(\d+)">\s*<td>[^<]*</td>\s*<td>admin</td>', members.text)
    changed = await _post(
        clients["owner"], f"/console/products/{slug}/members/{admin_id[0]}/role", {"role": "viewer"}
    )
    assert changed.status_code == 303


async def test_only_console_admins_create_products(team):
    _, clients = team
    for role in ROLES:
        assert (await clients[role].get("/console/products/new")).status_code == 403
        refused = await _post(
            clients[role], "/console/products", {"slug": f"x-{uuid.uuid4().hex[:6]}", "name": "X"}
        )
        assert refused.status_code == 403


async def test_the_products_list_shows_only_the_members_products(team):
    slug, clients = team
    assert f'id="product-{slug}"' in (await clients["viewer"].get("/console/products")).text
    assert f'id="product-{slug}"' not in (await clients["outsider"].get("/console/products")).text
