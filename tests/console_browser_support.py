"""Helpers for the console's browser test (tests/test_console_browser.py): the story's shared
state, and the few ways it reads pages (a row of a table by its cells, a secret shown once,
whether a page fits its window) and checks effects from outside (the public API from an
origin, a session's socket dropped)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx
import pytest
import websockets

from tests.console_support import console_email
from tests.support import CableClient, HubServer, Mailbox, product_headers

if TYPE_CHECKING:
    from playwright.async_api import Browser, Locator, Page

expect = pytest.importorskip("playwright.async_api").expect

PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
SESSION_COOKIE = "hub_console_session"
ORIGIN_ONE = "https://one.example.com"
ORIGIN_TWO = "https://two.example.com"
ORIGIN_THREE = "https://three.example.com"
DEVELOPER_PASSWORD = "Developer-Pass-456"
# For the answers that wait on a password hash (argon2, slow on a loaded machine).
HASHING = 15_000


@dataclass
class Story:
    """What the steps hand on to each other; a step that needs what an earlier one failed to
    make is skipped (the earlier failure already fails the run)."""

    hub: HubServer
    mailbox: Mailbox
    browser: Browser
    admin_email: str = field(default_factory=lambda: console_email("admin"))
    developer_email: str = field(default_factory=lambda: console_email("dev"))
    slug: str = field(default_factory=lambda: f"shop-{uuid.uuid4().hex[:8]}")
    admin: Page | None = None  # the admin's tab (a phone-sized window)
    developer: Page | None = None  # the developer's tab, in a browser context of its own
    user_email: str = ""  # the end user whose sessions step 6 revokes
    done: set[str] = field(default_factory=set)

    def needs(self, *steps: str) -> None:
        missing = [s for s in steps if s not in self.done]
        if missing:
            pytest.skip(f"an earlier step did not finish: {', '.join(missing)}")

    def api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.hub.url, timeout=15)

    def product_url(self, tail: str = "") -> str:
        return f"{self.hub.url}/console/products/{self.slug}{tail}"


async def assert_fits(tab: Page) -> None:
    """Nothing on the page is wider than the window (tables scroll inside themselves)."""
    widths = await tab.evaluate(
        "({page: document.documentElement.scrollWidth, window: innerWidth})"
    )
    assert widths["page"] <= widths["window"], f"{tab.url} is too wide: {widths}"


async def new_tab(story: Story, **context: object) -> Page:
    return await (await story.browser.new_context(**context)).new_page()


async def shown_secret(tab: Page) -> str:
    await expect(tab.locator("#new-secret")).to_be_visible()
    return (await tab.locator("#secret-value").text_content()).strip()


def key_row(tab: Page, env: str, kind: str) -> Locator:
    rows = tab.locator("#keys tbody tr")
    return rows.filter(has=tab.get_by_role("cell", name=env, exact=True)).filter(
        has=tab.get_by_role("cell", name=kind, exact=True)
    )


async def sign_in(tab: Page, hub: HubServer, email: str, password: str) -> None:
    await tab.goto(f"{hub.url}/console")
    await expect(tab).to_have_url(f"{hub.url}/console/sign-in")
    await tab.get_by_label("Email").fill(email)
    await tab.get_by_label("Password").fill(password)
    await tab.get_by_role("button", name="Sign in").click()
    await expect(tab).to_have_url(f"{hub.url}/console/products", timeout=HASHING)


async def login_from(client: httpx.AsyncClient, slug: str, origin: str) -> httpx.Response:
    """A public endpoint called from a page at `origin` (a wrong password: no account)."""
    return await client.post(
        "/api/v1/auth/login",
        headers=product_headers(slug, Origin=origin),
        json={"email": "nobody@example.com", "password": "not-the-password"},
    )


def session_id(access_token: str) -> str:
    """The session an access token belongs to (its `sid` claim; the signature is the hub's
    business, not this test's)."""
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"]


async def expect_dropped(socket: CableClient) -> None:
    frame = await socket.expect(lambda f: f.get("type") == "disconnect", within=5)
    assert frame == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    with pytest.raises(websockets.ConnectionClosed):
        await socket.recv(within=5)


async def refresh(client: httpx.AsyncClient, slug: str, tokens: dict) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/refresh",
        headers=product_headers(slug),
        json={"refresh_token": tokens["refresh_token"]},
    )


def audit_rows(tab: Page, action: str, target: str, who: str) -> Locator:
    """The audit log's rows of `action` on `target` by `who`."""
    rows = tab.locator("#audit tbody tr").filter(
        has=tab.get_by_role("cell", name=action, exact=True)
    )
    return rows.filter(has=tab.get_by_role("cell", name=who, exact=True)).filter(has_text=target)
