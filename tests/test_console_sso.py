"""Single sign-on wired into the hub: a real `notification-hub serve` configured with
HUB_CONSOLE_OIDC_* against the real local provider (tests/oidc_provider.py, Authlib's
authorization server — the third party, the only part not the hub's own), ending in a console
session like a password sign-in, or refused for an identity the console does not know.

The client's own refusals (state, replay, signature, aud, nonce) are in test_console_oidc*.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from console.guard import COOKIE
from tests.console_support import CONSOLE_PASSWORD, create_admin
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.support import HubServer, free_port

SIGN_IN = "/console/sign-in/oidc"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    server = OidcProvider(redirect_uri="http://127.0.0.1:1/unset").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, provider: OidcProvider) -> Iterator[HubServer]:
    port = free_port()
    provider.client.redirect_uri = f"http://127.0.0.1:{port}/v1/auth/callback"
    server = HubServer(
        tmp_path_factory.mktemp("sso-hub"),
        port=port,
        extra_env={
            "HUB_CONSOLE_OIDC_ISSUER": provider.issuer,
            "HUB_CONSOLE_OIDC_CLIENT_ID": CLIENT_ID,
            "HUB_CONSOLE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "HUB_CONSOLE_OIDC_NAME": "Test IdP",
        },
    )
    server.start()
    yield server
    server.stop()


async def through_provider(browser: httpx.AsyncClient, hub: HubServer) -> httpx.Response:
    """Sign-in button → provider (auto-approves its user) → the hub's callback answer."""
    start = await browser.get(f"{hub.url}{SIGN_IN}?next=/console/products")
    assert start.status_code == 302, start.text
    at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    return await browser.get(at_provider.headers["location"])


async def test_an_identity_without_a_console_account_is_refused(
    hub: HubServer, provider: OidcProvider
):
    provider.reset()
    provider.user.email = "nobody-here@example.com"
    provider.user.sub = "sub-nobody"
    async with httpx.AsyncClient(timeout=20) as browser:
        answer = await through_provider(browser, hub)
        assert answer.status_code == 403, answer.text
        assert "oidc.not_allowed" in answer.text
        assert COOKIE not in browser.cookies
        products = await browser.get(f"{hub.url}/console/products")
        assert products.status_code == 303
        assert products.headers["location"].startswith("/console/sign-in")


async def test_an_unverified_email_does_not_link_an_existing_account(
    hub: HubServer, provider: OidcProvider
):
    provider.reset()
    create_admin(hub, "unverified-op@example.com")
    provider.user.email = "unverified-op@example.com"
    provider.user.email_verified = False
    provider.user.sub = "sub-unverified"
    try:
        async with httpx.AsyncClient(timeout=20) as browser:
            answer = await through_provider(browser, hub)
            assert answer.status_code == 403 and "oidc.not_allowed" in answer.text
    finally:
        provider.user.email_verified = True


async def test_the_provider_signs_in_an_operator_with_a_console_session(
    hub: HubServer, provider: OidcProvider
):
    provider.reset()
    create_admin(hub, "sso-op@example.com")
    provider.user.email = "sso-op@example.com"
    provider.user.sub = "sub-sso-op"
    async with httpx.AsyncClient(timeout=20) as browser:
        page = await browser.get(f"{hub.url}/console/sign-in")
        assert f'href="{SIGN_IN}"' in page.text and "Sign in with Test IdP" in page.text

        answer = await through_provider(browser, hub)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/console/products"
        session = browser.cookies.get(COOKIE)
        assert session
        products = await browser.get(f"{hub.url}/console/products")
        assert products.status_code == 200 and "sso-op@example.com" in products.text

        # Linked by (issuer, subject) now: a changed email at the provider still signs in.
        provider.user.email = "renamed@example.com"
        again = await through_provider(browser, hub)
        assert again.status_code == 303
        assert browser.cookies.get(COOKIE) != session  # a new session id at every sign-in
        stale = await httpx.AsyncClient(timeout=20, cookies={COOKIE: session}).get(
            f"{hub.url}/console/products"
        )
        assert stale.status_code == 303  # the one presented at sign-in ended


def test_a_partial_single_sign_on_configuration_is_one_line_at_start(tmp_path):
    server = HubServer(tmp_path, extra_env={"HUB_CONSOLE_OIDC_ISSUER": "https://idp.example"})
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(server.port)],
        cwd=tmp_path,
        env=server.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "HUB_CONSOLE_OIDC" in line]
    assert len(lines) == 1, result.stderr
    assert "HUB_CONSOLE_OIDC_CLIENT_SECRET" in lines[0]
    assert CONSOLE_PASSWORD not in result.stderr
