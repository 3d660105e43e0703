"""The demo page in real headless Chromium (Debian's `chromium`, driven by Playwright through
`executable_path`; no browser is downloaded): register, receive a notification published
through the server API, watch the badge, mark it read, reload and stay logged in, survive a
hub restart. A failing run leaves `demo-failure.png` in the test's temporary directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import service_missing
from tests.support import PASSWORD, HubServer, bearer, create_product, publish

playwright_api = pytest.importorskip("playwright.async_api")


def chromium_path() -> str:
    """Debian's Chromium, installed with apt-get on first use when we are root."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "chromium"],
            capture_output=True,
            timeout=900,
            check=False,
        )
        found = shutil.which("chromium")
    if found is None:
        service_missing("Chromium (Debian's `chromium` package)")
    return found  # type: ignore[return-value]


@pytest.fixture(scope="module")
def demo_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = HubServer(workdir=tmp_path_factory.mktemp("demo-hub"))
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
        tab = await browser.new_page()
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


async def test_register_receive_read_reload_and_survive_a_restart(demo_hub, page, tmp_path):
    product = create_product(demo_hub, None, "--origin", demo_hub.url)
    email = f"demo-{uuid.uuid4().hex[:8]}@example.com"
    await page.goto(f"{demo_hub.url}/demo/?product={product['slug']}")
    assert await page.text_content("#product-slug") == product["slug"]

    await page.fill("#register-form [name=name]", "Avery")
    await page.fill("#register-form [name=organization_name]", "Acme")
    await page.fill("#register-form [name=email]", email)
    await page.fill("#register-form [name=password]", PASSWORD)
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
    await page.fill("#register-form [name=organization_name]", "Acme")
    await page.fill("#register-form [name=email]", f"demo-{uuid.uuid4().hex[:8]}@example.com")
    await page.fill("#register-form [name=password]", PASSWORD)
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
