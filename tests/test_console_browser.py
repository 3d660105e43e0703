"""The console in real headless Chromium (Debian's `chromium` through Playwright's
`executable_path`, as tests/test_demo_page.py does; no browser is downloaded), against a
real hub process (PostgreSQL when `DATABASE_URL` names one, the in-process SMTP server for
mail), told as one story whose steps are the tests below, in order (`--dist loadfile` keeps a
file on one worker):

1. the bootstrap admin, made with `notification-hub console create-admin`, signs in;
2. creates a product and lands on its page;
3. edits its origins: the public API takes the added origin and refuses the removed one at once;
4. rotates the live secret key (the old one is refused at once, the page shows the new one once)
   and creates a restricted key;
5. invites a developer by email, who opens the mailed link in another browser, sets a password,
   signs in and is refused the audit log (the 403 page) but may create a key;
6. revokes an end user's sessions from the users page, one and then all: each session's socket
   is told and closed, its refresh token refused;
7. reads the audit log (every step above, by whom and from where) and signs out: the cookie the
   browser held is refused by the server afterwards.

The admin works in a phone-sized window (390×844) throughout, the developer in a smaller one
(360×740): no page is wider than its window (tables scroll inside themselves). Only what a
user sees drives the pages (labels, button texts, stable ids); httpx and a WebSocket client
check the effects from outside. A failing step leaves a screenshot of each open page in its
temporary directory.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import scratch_postgres
from tests.console_browser_support import (
    DEVELOPER_PASSWORD,
    HASHING,
    ORIGIN_ONE,
    ORIGIN_THREE,
    ORIGIN_TWO,
    PHONE,
    SESSION_COOKIE,
    SMALL_PHONE,
    Story,
    assert_fits,
    audit_rows,
    expect_dropped,
    key_row,
    login_from,
    new_tab,
    refresh,
    session_id,
    shown_secret,
    sign_in,
)
from tests.console_support import CONSOLE_PASSWORD, create_admin
from tests.support import HubServer, Mailbox, bearer, cable, login, mail_body, register
from tests.test_demo_page import chromium_path

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def console_hub(
    tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox, redis_url: str | None
) -> Iterator[HubServer]:
    with scratch_postgres() as database_url:
        server = HubServer(
            workdir=tmp_path_factory.mktemp("console-browser-hub"),
            database_url=database_url,
            smtp_port=mailbox.port,
            redis_url=redis_url,
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
async def story(console_hub: HubServer, mailbox: Mailbox) -> AsyncIterator[Story]:
    executable = chromium_path()
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield Story(hub=console_hub, mailbox=mailbox, browser=browser)
        finally:
            await browser.close()


@pytest.fixture(autouse=True)
async def screenshots_on_failure(
    request: pytest.FixtureRequest, story: Story, tmp_path: Path
) -> AsyncIterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for name in ("admin", "developer"):
            tab = getattr(story, name)
            if tab is None:
                continue
            shot = tmp_path / f"console-{name}-failure.png"
            with contextlib.suppress(Exception):
                await tab.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the {name}'s page: {shot}")


# -- 1 and 2 ----------------------------------------------------------------------------------


async def test_1_the_bootstrap_admin_signs_in_and_2_creates_a_product(story: Story):
    hub = story.hub
    create_admin(hub, story.admin_email)  # the real CLI, the password on stdin
    story.admin = await new_tab(story, viewport=PHONE)
    tab = story.admin

    # A wrong password first: the form says so, nothing more.
    await tab.goto(f"{hub.url}/console/sign-in")
    await tab.get_by_label("Email").fill(story.admin_email)
    await tab.get_by_label("Password").fill(CONSOLE_PASSWORD + "x")
    await tab.get_by_role("button", name="Sign in").click()
    error = tab.locator("#sign-in-error")
    await expect(error).to_have_text("Wrong email or password.", timeout=HASHING)
    await assert_fits(tab)

    await sign_in(tab, hub, story.admin_email, CONSOLE_PASSWORD)
    await expect(tab.locator("#signed-in-as")).to_have_text(f"{story.admin_email} (admin)")
    await assert_fits(tab)

    await tab.get_by_role("link", name="New product").click()
    await expect(tab.get_by_role("heading", name="New product")).to_be_visible()
    await assert_fits(tab)
    await tab.get_by_label("Slug").fill(story.slug)
    await tab.get_by_label("Name", exact=True).fill("Shop Phone")
    await tab.get_by_label("Identity pool").select_option(label="A new pool of its own")
    await tab.get_by_label("Allowed origins").fill(f"{ORIGIN_ONE}\n{ORIGIN_TWO}")
    await tab.get_by_role("button", name="Create").click()

    await expect(tab).to_have_url(story.product_url())
    await expect(tab.get_by_role("heading", level=1)).to_contain_text("Shop Phone")
    await expect(tab.locator("#role")).to_have_text("owner")
    await expect(tab.locator("#origins")).to_have_value(f"{ORIGIN_ONE}\n{ORIGIN_TWO}")
    await assert_fits(tab)
    story.done.add("product")


# -- 3 ----------------------------------------------------------------------------------------


async def test_3_edited_origins_apply_to_the_public_api_at_once(story: Story):
    story.needs("product")
    tab = story.admin
    async with story.api() as client:
        # The product's origins as created, seen (and cached) by the API before the edit.
        before = await login_from(client, story.slug, ORIGIN_ONE)
        assert before.status_code == 401, before.text
        assert before.headers["access-control-allow-origin"] == ORIGIN_ONE
        refused = await login_from(client, story.slug, ORIGIN_THREE)
        assert refused.status_code == 403

        # One origin added, one removed.
        await tab.get_by_label("One per line").fill(f"{ORIGIN_TWO}\n{ORIGIN_THREE}")
        await tab.get_by_role("button", name="Save origins").click()
        await expect(tab).to_have_url(story.product_url())
        await expect(tab.locator("#origins")).to_have_value(f"{ORIGIN_THREE}\n{ORIGIN_TWO}")
        await assert_fits(tab)

        added = await login_from(client, story.slug, ORIGIN_THREE)
        assert added.status_code == 401, added.text  # past the origin check, to the password
        assert added.headers["access-control-allow-origin"] == ORIGIN_THREE
        removed = await login_from(client, story.slug, ORIGIN_ONE)
        assert removed.status_code == 403
        assert removed.json()["error"]["code"] == "origin.forbidden"
        assert "access-control-allow-origin" not in removed.headers
        kept = await login_from(client, story.slug, ORIGIN_TWO)
        assert kept.status_code == 401
    story.done.add("origins")


# -- 4 ----------------------------------------------------------------------------------------


async def test_4_a_rotated_secret_key_is_refused_at_once_and_shown_once(story: Story):
    story.needs("product")
    tab = story.admin
    await tab.get_by_role("link", name="Keys").click()
    await expect(tab).to_have_url(story.product_url("/keys"))
    await expect(tab.locator("#new-secret")).to_have_count(0)
    await assert_fits(tab)

    # A product made in the console shows no secret; rotating the key gives one (shown once).
    await key_row(tab, "live", "secret").get_by_role("button", name="Rotate").click()
    first = await shown_secret(tab)
    assert first.startswith("sk_live_")
    await assert_fits(tab)
    rotation = tab.expect_response(lambda r: r.request.method == "POST" and "/rotate" in r.url)
    async with rotation as answer:
        await key_row(tab, "live", "secret").get_by_role("button", name="Rotate").click()
    response = await answer.value
    assert response.status == 201 and response.headers["cache-control"] == "no-store"
    second = await shown_secret(tab)
    assert second.startswith("sk_live_") and second != first
    await expect(tab.locator("#new-secret")).to_contain_text("the old one no longer works")

    async with story.api() as client:
        old = await client.get("/api/v1/product", headers=bearer(first))
        assert old.status_code == 401, old.text
        new = await client.get("/api/v1/product", headers=bearer(second))
        assert new.status_code == 200, new.text
        assert new.json()["product"]["slug"] == story.slug

    # Opened again, the page shows no secret: only prefixes.
    await tab.goto(story.product_url("/keys"))
    await expect(tab.locator("#new-secret")).to_have_count(0)
    assert second not in await tab.content()
    await expect(key_row(tab, "live", "secret")).to_contain_text(second[:14])

    # A restricted key with one scope: it does that and nothing else.
    await tab.get_by_label("Name").fill("reporting")
    await tab.get_by_label("Environment").select_option("live")
    await tab.get_by_label("keys:write").check()
    await tab.get_by_role("button", name="Create key").click()
    restricted = await shown_secret(tab)
    assert restricted.startswith("rk_live_")
    await expect(key_row(tab, "live", "restricted")).to_contain_text("reporting")
    await assert_fits(tab)
    async with story.api() as client:
        listed = await client.get("/api/v1/keys", headers=bearer(restricted))
        assert listed.status_code == 200, listed.text
        beyond = await client.get("/api/v1/product", headers=bearer(restricted))
        assert beyond.status_code == 403
    story.done.add("keys")


# -- 5 ----------------------------------------------------------------------------------------


async def test_5_an_invited_developer_joins_and_meets_the_role_matrix(story: Story):
    story.needs("product")
    hub, tab, email = story.hub, story.admin, story.developer_email
    await tab.goto(story.product_url())
    await tab.get_by_role("link", name="Members").click()
    await expect(tab).to_have_url(story.product_url("/members"))
    await assert_fits(tab)
    invite_form = tab.locator("#invite-form")
    await invite_form.get_by_label("Email").fill(email)
    await invite_form.get_by_label("Role").select_option("developer")
    await invite_form.get_by_role("button", name="Invite").click()
    await expect(tab.locator("#notice")).to_have_text(f"Invited {email} as developer.")
    shown = (await tab.locator("#invitation-link").text_content()).strip()
    await assert_fits(tab)

    [mail] = await story.mailbox.wait_for(email, kind="console_invitation")
    link = next(w for w in mail_body(mail).split() if "/console/invitations/" in w)
    assert link == shown and link.startswith(f"{hub.url}/console/invitations/")

    # The developer opens the mailed link in a browser of their own and sets a password.
    story.developer = await new_tab(story, viewport=SMALL_PHONE)
    dev = story.developer
    await dev.goto(link)
    await expect(dev.locator("#invitation-email")).to_have_text(email)
    await assert_fits(dev)
    await dev.get_by_label("Choose a password").fill(DEVELOPER_PASSWORD)
    await dev.get_by_label("The password again").fill(DEVELOPER_PASSWORD)
    await dev.get_by_role("button", name="Accept the invitation").click()
    await expect(dev).to_have_url(f"{hub.url}/console/products", timeout=HASHING)
    await expect(dev.locator("#signed-in-as")).to_have_text(email)

    # Signed out and in again with that password.
    await dev.get_by_role("button", name="Sign out").click()
    await expect(dev).to_have_url(f"{hub.url}/console/sign-in")
    await sign_in(dev, hub, email, DEVELOPER_PASSWORD)
    await expect(dev.locator("#products")).to_contain_text("developer")
    await dev.get_by_role("link", name="Shop Phone").click()
    await expect(dev.locator("#role")).to_have_text("developer")
    # What the matrix refuses a developer is not offered...
    await expect(dev.locator("#settings-form")).to_have_count(0)
    await expect(dev.locator("#nav-audit")).to_have_count(0)
    await dev.get_by_role("link", name="Members").click()
    await expect(dev.locator("#members")).to_contain_text(email)
    await expect(dev.locator("#invite-form")).to_have_count(0)
    # ...and refused when asked for by its address: the 403 page.
    refused = await dev.goto(story.product_url("/audit"))
    assert refused is not None and refused.status == 403
    await expect(dev.locator("#error-status")).to_have_text("403")
    await expect(dev.locator("#error-message")).to_have_text(
        "Your role on this product does not allow this."
    )
    await expect(dev.locator("#audit")).to_have_count(0)
    await assert_fits(dev)

    # What it allows works: a developer makes a restricted key.
    await dev.goto(story.product_url("/keys"))
    await dev.get_by_label("Name").fill("dev-reader")
    await dev.get_by_label("keys:write").check()
    await dev.get_by_role("button", name="Create key").click()
    made = await shown_secret(dev)
    await assert_fits(dev)
    assert made.startswith("rk_live_")
    async with story.api() as client:
        assert (await client.get("/api/v1/keys", headers=bearer(made))).status_code == 200
    story.done.add("invitation")


# -- 6 ----------------------------------------------------------------------------------------


async def test_6_revoking_a_users_sessions_drops_their_sockets(story: Story):
    story.needs("product")
    tab, user_email = story.admin, f"user-{uuid.uuid4().hex[:8]}@example.com"
    async with story.api() as client:
        # An end user of the product with two sessions (two devices), each with a socket.
        phone = await register(client, user_email, product=story.slug)
        laptop = (await login(client, user_email, product=story.slug)).json()
        phone_socket = await cable(story.hub.url, phone["access_token"])
        laptop_socket = await cable(story.hub.url, laptop["access_token"])
        try:
            await tab.goto(story.product_url())
            await tab.get_by_role("link", name="Users").click()
            await expect(tab).to_have_url(re.compile(re.escape(story.product_url("/users"))))
            await assert_fits(tab)
            await tab.get_by_label("Email (or its beginning)").fill(user_email)
            await tab.get_by_role("button", name="Search").click()
            await tab.get_by_role("link", name=user_email).click()
            await expect(tab.locator("#user-email")).to_have_text(user_email)
            await expect(tab.locator("form[id^='revoke-session-']")).to_have_count(2)

            # One session: its socket is told and closed; the other device is untouched.
            phone_form = tab.locator(f"#revoke-session-{session_id(phone['access_token'])}")
            await phone_form.get_by_role("button", name="Revoke").click()
            await expect(tab.locator("form[id^='revoke-session-']")).to_have_count(1)
            await expect_dropped(phone_socket)
            with pytest.raises(AssertionError):
                await laptop_socket.expect(lambda f: f.get("type") == "disconnect", within=0.5)
            assert (await refresh(client, story.slug, phone)).status_code == 401

            # Then every session.
            await tab.get_by_role("button", name="Revoke all sessions").click()
            await expect(tab.locator("#no-sessions")).to_be_visible()
            await expect_dropped(laptop_socket)
            assert (await refresh(client, story.slug, laptop)).status_code == 401
        finally:
            await phone_socket.close()
            await laptop_socket.close()
    story.user_email = user_email
    story.done.add("revocation")


async def test_6_the_user_page_fits_a_phone(story: Story):
    story.needs("revocation")
    tab = story.admin
    await tab.goto(story.product_url("/users"))
    await tab.get_by_label("Email (or its beginning)").fill(story.user_email)
    await tab.get_by_role("button", name="Search").click()
    await assert_fits(tab)
    await tab.get_by_role("link", name=story.user_email).click()
    await expect(tab.locator("#user-email")).to_have_text(story.user_email)
    await assert_fits(tab)


# -- 7 ----------------------------------------------------------------------------------------


async def test_7_the_audit_log_shows_every_step_and_sign_out_ends_the_session(story: Story):
    story.needs("product")
    tab, hub = story.admin, story.hub
    await tab.goto(story.product_url())
    await tab.get_by_role("link", name="Audit log").click()
    await expect(tab).to_have_url(story.product_url("/audit"))
    await assert_fits(tab)

    expected = [("product.create", story.slug, story.admin_email)]
    if "origins" in story.done:
        expected.append(("product.origins", story.slug, story.admin_email))
    if "keys" in story.done:
        expected += [("key.rotate", "sk_live_", story.admin_email)] * 2
        expected.append(("key.create", "rk_live_", story.admin_email))
    if "invitation" in story.done:
        expected.append(("member.invite", story.developer_email, story.admin_email))
        expected.append(("member.join", story.developer_email, story.developer_email))
        expected.append(("key.create", "rk_live_", story.developer_email))
    if "revocation" in story.done:
        expected.append(("user.session_revoke", story.user_email, story.admin_email))
        expected.append(("user.sessions_revoke", story.user_email, story.admin_email))
    for action, target, who in expected:
        rows = audit_rows(tab, action, target, who)
        await expect(rows).to_have_count(expected.count((action, target, who)))
        # Where it came from: the client's address (and its browser).
        await expect(rows.first.locator("td").nth(4)).to_contain_text("127.0.0.1")

    # Signing out ends the session on the server, not only in this browser.
    [cookie] = [c for c in await tab.context.cookies() if c["name"] == SESSION_COOKIE]
    jar = {SESSION_COOKIE: cookie["value"]}
    async with httpx.AsyncClient(base_url=hub.url, timeout=15, cookies=jar) as client:
        alive = await client.get(f"/console/products/{story.slug}")
        assert alive.status_code == 200  # the copied cookie works while signed in
        await tab.get_by_role("button", name="Sign out").click()
        await expect(tab).to_have_url(f"{hub.url}/console/sign-in")
        await assert_fits(tab)
        assert SESSION_COOKIE not in {c["name"] for c in await tab.context.cookies()}
        after = await client.get(f"/console/products/{story.slug}")
        assert after.status_code == 303
        assert after.headers["location"] == "/console/sign-in"
    # And the browser, sent back to a page, is asked to sign in.
    await tab.goto(story.product_url("/audit"))
    await expect(tab).to_have_url(f"{hub.url}/console/sign-in")
