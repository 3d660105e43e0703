"""The harness of the console's OpenID Connect tests: the hub's sign-in pages in a tiny
Starlette app under a real uvicorn (in a thread, on a free port), the real provider
(tests/oidc_provider.py) as a module fixture, an httpx client playing the browser (a cookie
jar, redirects followed hop by hop), and the checks every refusal must pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.tokens import TokenSigner, generate_private_key_pem, load_signing_keys
from console.oidc import OidcClient, OidcConfig, VerifiedIdentity
from console.oidc_pending import COOKIE
from console.oidc_routes import oidc_routes
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, OidcProvider
from tests.support import free_port

SIGN_IN = "/console/sign-in/oidc"
CALLBACK = "/v1/auth/callback"


class Hub:
    """The hub's OIDC pages in a tiny Starlette app under a real uvicorn, in a thread."""

    def __init__(self, issuer: str, *, secure_cookies: bool = False, **client_kwargs) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.signer = TokenSigner(load_signing_keys(generate_private_key_pem()), self.url)
        config = OidcConfig(
            issuer=issuer,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            redirect_uri=self.url + CALLBACK,
            label="Test provider",
        )
        self.client = OidcClient(config, **client_kwargs)

        # Stands in for console-core's `on_identity`, which maps the identity to an operator
        # account and starts the cookie session; here it only shows what it was given.
        async def on_identity(request: Request, identity: VerifiedIdentity) -> Response:
            return JSONResponse(
                {**dataclasses.asdict(identity), "return_to": request.state.oidc_return_to}
            )

        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            yield
            await self.client.aclose()

        app = Starlette(
            routes=oidc_routes(
                self.client, on_identity, signer=self.signer, secure_cookies=secure_cookies
            ),
            lifespan=lifespan,
        )
        config_ = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config_)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> Hub:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test hub did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextlib.contextmanager
def running_hub(provider: OidcProvider, issuer: str | None = None, **kwargs) -> Iterator[Hub]:
    hub = Hub(issuer or provider.issuer, **kwargs)
    provider.client.redirect_uri = hub.url + CALLBACK  # the one registered redirect URI
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    server = OidcProvider(redirect_uri="http://127.0.0.1:1/unset").start()
    yield server
    server.stop()


@pytest.fixture
def hub(provider: OidcProvider) -> Iterator[Hub]:
    provider.reset()
    with running_hub(provider) as running:
        yield running
    provider.reset()


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as client:
        yield client


async def to_callback(browser: httpx.AsyncClient, hub: Hub, query: str = "") -> str:
    """Start a sign-in and follow it to the provider and back: the callback URL the provider
    sends the browser to (not yet visited)."""
    start = await browser.get(f"{hub.url}{SIGN_IN}{query}")
    assert start.status_code == 302, start.text
    at_provider = await browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    callback = at_provider.headers["location"]
    assert callback.startswith(hub.url + CALLBACK + "?")
    return callback


def with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return parts._replace(query=urlencode({**params, **changes})).geturl()


def assert_refused(response: httpx.Response, code: str, status: int = 403) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/html")
    assert "Sign-in failed" in response.text and code in response.text
    assert "Traceback" not in response.text
    assert response.headers["cache-control"] == "no-store"


def cookie_cleared(response: httpx.Response) -> bool:
    return any(
        h.startswith(f"{COOKIE}=") and ("Max-Age=0" in h or "expires=" in h.lower())
        for h in response.headers.get_list("set-cookie")
    )
