"""The demo page in real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`; no browser is downloaded): register, receive a notification published
through the server API, watch the badge, mark it read, reload and stay logged in, survive a
hub restart; mailed reset and verification links signed out and in, field-level validation
messages, "Load more" past the first page; and where the page is served at all (development,
or production for the product `HUB_DEMO_PRODUCT` names). A failing run leaves
`demo-failure.png` in the test's temporary directory."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from auth.mail import PASSWORD_RESET, VERIFY_EMAIL
from tests.conftest import service_missing
from tests.support import (
    PASSWORD,
    HubServer,
    Mailbox,
    bearer,
    create_product,
    log_since,
    login,
    mail_body,
    product_headers,
    publish,
    register,
)

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect

NEW_PASSWORD = "BrandNewPass456!"


def chromium_path() -> str:
    """Debian's Chromium, installed with apt-get on first use when we are root (the package
    alone, without its recommends, after refreshing the package lists), saying so first."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        sys.stderr.write("\ninstalling Debian's chromium for the demo page's browser test\n")
        for command in (
            ["apt-get", "update", "-q"],
            ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
        ):
            subprocess.run(command, capture_output=True, timeout=900, check=False)
        found = shutil.which("chromium")
    if found is None:
        service_missing("Chromium (Debian's `chromium` package)")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[HubServer]:
    server = HubServer(workdir=tmp_path_factory.mktemp("demo-hub"), smtp_port=mailbox.port)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def page(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    executable = chromium_path()
    async with playwright_api.async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        # A context of its own, in which a test may open more tabs (sharing localStorage).
        tab = await (await browser.new_context()).new_page()
        try:
            yield tab
        finally:
            report = getattr(request.node, "rep_call", None)
            if report is not None and report.failed:
                shot = tmp_path / "demo-failure.png"
                with contextlib.suppress(Exception):
                    await tab.screenshot(path=str(shot), full_page=True)
                    print(f"screenshot of the failing page: {shot}")
            await browser.close()


async def wait_for_state(page, state: str) -> None:
    await page.wait_for_selector(f'#connection[data-state="{state}"]', timeout=15_000)


async def fill_register(
    page, email: str, password: str = PASSWORD, confirmation: str | None = None
):
    await page.fill("#register-form [name=organization_name]", "Acme")
    await page.fill("#register-form [name=email]", email)
    await page.fill("#register-form [name=password]", password)
    confirmation = password if confirmation is None else confirmation
    await page.fill("#register-form [name=password_confirmation]", confirmation)


async def mailed_link(mailbox: Mailbox, email: str, kind: str, count: int = 1) -> str:
    """The link (to the demo page, the product having no template) in the newest mail."""
    [*_, mail] = await mailbox.wait_for(email, count, kind=kind)
    return next(word for word in mail_body(mail).split() if "/demo/#" in word)


def new_email() -> str:
    return f"demo-{uuid.uuid4().hex[:8]}@example.com"


async def test_register_receive_read_reload_and_survive_a_restart(demo_hub, page, tmp_path):
    product = create_product(demo_hub, None, "--origin", demo_hub.url)
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(f"{demo_hub.url}/demo/?product={product['slug']}")
    assert await page.text_content("#product-slug") == product["slug"]

    await page.fill("#register-form [name=name]", "Avery")
    await fill_register(page, email)
    await page.click("#register-form button")
    await page.wait_for_selector("#signed-in", state="visible")
    await wait_for_state(page, "connected")
    assert await page.text_content("#user-email") == email
    assert await page.text_content("#badge") == "0"

    session = await page.evaluate(
        f"JSON.parse(localStorage.getItem('notification-hub-demo:{product['slug']}'))"
    )
    user_id = session["user"]["id"]
    async with httpx.AsyncClient(base_url=demo_hub.url) as client:
        await publish(client, product["sk_live"], user_id, title="Your report is ready")
        item = page.locator("#notifications li.unread", has_text="Your report is ready")
        await item.wait_for(timeout=10_000)
        assert await page.text_content("#badge") == "1"

        await item.locator("button.mark-read").click()
        await page.locator("#notifications li.read", has_text="Your report is ready").wait_for()
        await page.wait_for_function("document.querySelector('#badge').textContent === '0'")
        unread = await client.get(
            "/api/v1/notifications/unread_count", headers=bearer(session["access_token"])
        )
        assert unread.json() == {"unread_count": 0}  # the read went through the cable to SQL

        await page.reload()
        await page.wait_for_selector("#signed-in", state="visible")
        await wait_for_state(page, "connected")
        await page.locator("#notifications li", has_text="Your report is ready").wait_for()

        # The hub restarts: the page sees the socket go, reconnects by itself, and catches up
        # (live or through `sync`) with what was published as the hub came back.
        demo_hub.stop()
        await page.wait_for_selector('#connection:not([data-state="connected"])', timeout=10_000)
        demo_hub.start()
        await publish(client, product["sk_live"], user_id, title="Sent after the restart")
        await page.locator("#notifications li.unread", has_text="Sent after the restart").wait_for(
            timeout=20_000
        )
        await wait_for_state(page, "connected")
        assert await page.text_content("#badge") == "1"


async def test_test_notification_button_and_logout(demo_hub, page):
    product = create_product(demo_hub, None, "--origin", demo_hub.url)
    await page.goto(f"{demo_hub.url}/demo/?product={product['slug']}")
    await fill_register(page, new_email())
    await page.click("#register-form button")
    await wait_for_state(page, "connected")
    await page.click("#send-test")
    await page.locator("#notifications li.unread", has_text="Test notification").wait_for()
    await page.click("#mark-all")
    await page.wait_for_function("document.querySelector('#badge').textContent === '0'")
    await page.click("#logout")
    await page.wait_for_selector("#signed-out", state="visible")
    assert await page.evaluate("localStorage.length") == 0
    await page.reload()
    await page.wait_for_selector("#signed-out", state="visible")


# -- mailed links -----------------------------------------------------------------------------


async def expect_reset_form_ready(tab) -> None:
    """The reset form shows, in view, its first field focused, whatever else the page shows."""
    form = tab.locator("#reset-form")
    await expect(form).to_be_visible()
    await expect(form).to_be_in_viewport()
    await expect(form.locator("[name=password]")).to_be_focused()
    await expect(tab.locator("#flash")).to_have_text("Choose a new password for your account.")


async def test_a_reset_link_signed_out_shows_the_form_and_checks_the_confirmation(
    demo_hub, page, mailbox
):
    email = new_email()
    async with httpx.AsyncClient(base_url=demo_hub.url) as client:
        await register(client, email)  # on `demo`, the page's product in development
        forgot = await client.post(
            "/api/v1/auth/forgot_password", headers=product_headers(), json={"email": email}
        )
        assert forgot.status_code == 202
        link = await mailed_link(mailbox, email, PASSWORD_RESET)
        assert link.startswith(f"{demo_hub.url}/demo/#reset_token=")

        # A small window, so that a form at the bottom of the page would be out of view.
        await page.set_viewport_size({"width": 800, "height": 500})
        await page.goto(link)
        await expect(page.locator("#signed-out")).to_be_visible()
        await expect_reset_form_ready(page)

        # A mismatched pair is never sent: the message sits next to the confirmation.
        sent: list[str] = []
        page.on("request", lambda r: sent.append(r.url) if "reset_password" in r.url else None)
        await page.fill("#reset-form [name=password]", NEW_PASSWORD)
        await page.fill("#reset-form [name=password_confirmation]", NEW_PASSWORD + "x")
        await page.click("#reset-form button")
        mismatch = page.locator("#reset-form .field-error[data-field=password_confirmation]")
        await expect(mismatch).to_contain_text("The two passwords differ")
        assert sent == []

        await page.fill("#reset-form [name=password_confirmation]", NEW_PASSWORD)
        await page.click("#reset-form button")
        await expect(page.locator("#flash")).to_have_text(
            "Your password has been changed. Log in with the new password."
        )
        await expect(page.locator("#flash")).to_be_focused()
        await expect(page.locator("#reset-form")).to_be_hidden()
        assert await page.evaluate("location.hash") == ""
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_reset_link_signed_in_shows_the_form_and_ends_the_session(demo_hub, page, mailbox):
    email = new_email()
    await page.goto(f"{demo_hub.url}/demo/")  # the `demo` product, as the mailed link opens
    await fill_register(page, email)
    await page.click("#register-form button")
    await wait_for_state(page, "connected")
    async with httpx.AsyncClient(base_url=demo_hub.url) as client:
        forgot = await client.post(
            "/api/v1/auth/forgot_password", headers=product_headers(), json={"email": email}
        )
        assert forgot.status_code == 202
        link = await mailed_link(mailbox, email, PASSWORD_RESET)

        # The link opens in a new tab of the same browser, which is signed in.
        tab = await page.context.new_page()
        await tab.set_viewport_size({"width": 800, "height": 500})
        await tab.goto(link)
        await expect(tab.locator("#signed-in")).to_be_visible()
        await expect_reset_form_ready(tab)

        await tab.fill("#reset-form [name=password]", NEW_PASSWORD)
        await tab.fill("#reset-form [name=password_confirmation]", NEW_PASSWORD)
        await tab.click("#reset-form button")
        await expect(tab.locator("#flash")).to_have_text(
            "Your password has been changed. Log in with the new password."
        )
        # The reset ended every session: this tab shows the login, the first one is let go.
        await expect(tab.locator("#signed-out")).to_be_visible()
        await page.wait_for_selector("#signed-out", state="visible", timeout=15_000)
        assert (await login(client, email, NEW_PASSWORD)).status_code == 200


async def test_a_verification_link_confirms_the_address_in_view(demo_hub, page, mailbox):
    email = new_email()
    async with httpx.AsyncClient(base_url=demo_hub.url) as client:
        created = await register(client, email)
        link = await mailed_link(mailbox, email, VERIFY_EMAIL)
        assert link.startswith(f"{demo_hub.url}/demo/#verify_token=")
        await page.goto(link)
        await expect(page.locator("#flash")).to_have_text("Your email address is confirmed.")
        await expect(page.locator("#flash")).to_be_focused()
        assert await page.evaluate("location.hash") == ""
        me = await client.get("/api/v1/auth/me", headers=bearer(created["access_token"]))
        assert me.json()["user"]["email_verified"] is True


# -- forms ------------------------------------------------------------------------------------


async def test_every_input_has_a_label_and_errors_sit_next_to_their_fields(demo_hub, page):
    await page.goto(f"{demo_hub.url}/demo/")
    unlabeled = await page.evaluate(
        "[...document.querySelectorAll('input')].filter((i) => i.labels.length === 0)"
        ".map((i) => `${i.form && i.form.id} ${i.name}`)"
    )
    assert unlabeled == []

    # The client's own check: a mismatched pair is not sent.
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/auth/register" in r.url else None)
    await fill_register(page, new_email(), confirmation=PASSWORD + "x")
    await page.click("#register-form button")
    await expect(
        page.locator("#register-form .field-error[data-field=password_confirmation]")
    ).to_contain_text("The two passwords differ")
    assert sent == []

    # The hub's 422: each field's message from `error.details`, right below that field.
    await fill_register(page, new_email(), password="short")
    await page.click("#register-form button")
    note = page.locator("#register-form .field-error[data-field=password]")
    await expect(note).to_have_text("The password must have at least 8 characters.")
    await expect(page.locator("#flash")).to_contain_text("Some fields are invalid.")
    # The earlier mismatch message is gone; the field points at its message and has focus.
    await expect(page.locator("#register-form .field-error")).to_have_count(1)
    password = page.locator("#register-form [name=password]")
    await expect(password).to_have_attribute("aria-invalid", "true")
    await expect(password).to_have_attribute("aria-describedby", "register-form-password-error")
    await expect(password).to_be_focused()
    assert await password.evaluate("(input) => input.closest('label').nextElementSibling.id") == (
        "register-form-password-error"
    )


# -- the list ---------------------------------------------------------------------------------


async def test_load_more_follows_the_cursor_to_the_end(demo_hub, page):
    product = create_product(demo_hub, None, "--origin", demo_hub.url)
    email = new_email()
    async with httpx.AsyncClient(base_url=demo_hub.url, timeout=30) as client:
        created = await register(client, email, product=product["slug"])
        user_id = created["user"]["id"]
        for batch in range(6):
            await asyncio.gather(
                *(
                    publish(client, product["sk_live"], user_id, title=f"Item {n}")
                    for n in range(batch * 10 + 1, batch * 10 + 11)
                )
            )

    await page.goto(f"{demo_hub.url}/demo/?product={product['slug']}")
    await page.fill("#login-form [name=email]", email)
    await page.fill("#login-form [name=password]", PASSWORD)
    await page.click("#login-form button")
    items = page.locator("#notifications li")
    await expect(items).to_have_count(50, timeout=15_000)
    load_more = page.locator("#load-more")
    await expect(load_more).to_be_visible()
    await load_more.click()
    await expect(items).to_have_count(60)
    await expect(load_more).to_be_hidden()
    assert await page.text_content("#badge") == "60"


# -- where the page is served -----------------------------------------------------------------


async def test_production_serves_the_page_for_hub_demo_product_without_development_hints(
    tmp_path, page
):
    slug = f"shop-{uuid.uuid4().hex[:6]}"
    hub = HubServer(workdir=tmp_path, extra_env={"HUB_ENV": "production", "HUB_DEMO_PRODUCT": slug})
    assert hub.cli("migrate").returncode == 0
    hub.start()
    try:
        # Named but missing: served, with a warning at start that says what to do.
        assert "HUB_DEMO_PRODUCT=" + slug + ": no such product" in hub.logs()
        hub.stop()
        create_product(hub, slug, "--origin", "https://shop.example.com")
        start = hub.log_path.stat().st_size
        hub.start()
        assert "does not allow the hub's own origin" in log_since(hub.log_path, start).decode()
        hub.stop()
        assert hub.cli("products", "set-origins", slug, hub.url).returncode == 0
        start = hub.log_path.stat().st_size
        hub.start()
        assert "the demo page" not in log_since(hub.log_path, start).decode()

        async with httpx.AsyncClient() as client:
            config = await client.get(f"{hub.url}/demo/config.js")
        assert config.status_code == 200
        assert f'"product": "{slug}"' in config.text and '"development": false' in config.text

        # `?product=` is development's: production shows its one product.
        await page.goto(f"{hub.url}/demo/?product=demo")
        assert await page.text_content("#product-slug") == slug
        hints = await page.locator(".dev-only").all()
        assert len(hints) >= 3
        for hint in hints:
            await expect(hint).to_be_hidden()
        await page.fill("#forgot-form [name=email]", new_email())
        await page.click("#forgot-form button")
        await expect(page.locator("#flash")).to_have_text(
            "If an account exists for that email, a reset link is on its way."
        )
        # And the page works for its product: register, signed in, the cable connected.
        await fill_register(page, new_email())
        await page.click("#register-form button")
        await wait_for_state(page, "connected")
        await expect(page.locator("#send-test")).to_be_hidden()
    finally:
        hub.stop()
