"""The two browser pages of OpenID Connect sign-in: `GET /console/sign-in/oidc` sends the
browser to the provider with a fresh pending login in a cookie, and `GET /v1/auth/callback`
(the redirect URI registered with the provider) finishes it and hands the verified identity to
`on_identity`, which answers (console-core: find the operator, start the cookie session).

They are pages, not API: a refusal is a short HTML page (400 or 403) saying sign-in failed and
why, never a 5xx nor a stack trace, and they are left out of /openapi.json (hub/openapi.py
EXCLUDED) like the demo page.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from auth.tokens import TokenSigner
from console.oidc import OidcClient, VerifiedIdentity
from console.oidc_errors import OidcError
from console.oidc_pending import CALLBACK_PATH, PendingCookie

logger = logging.getLogger("console.oidc")

SIGN_IN_PATH = "/console/sign-in/oidc"
DEFAULT_RETURN = "/console/"
MAX_QUERY = 8192  # bytes of query string; providers' codes and states are far shorter
MAX_VALUE = 4096
MAX_RETURN = 512

OnIdentity = Callable[[Request, VerifiedIdentity], Awaitable[Response]]

_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def _query(request: Request) -> dict[str, str]:
    """The query as one value per name, or `oidc.bad_request` for anything odd in it."""
    raw = request.scope.get("query_string", b"")
    if len(raw) > MAX_QUERY:
        raise OidcError("oidc.bad_request", "the address is too long")
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise OidcError("oidc.bad_request", "the address is not valid") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise OidcError("oidc.bad_request", "the address repeats a parameter")
        if len(value) > MAX_VALUE or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name + value):
            raise OidcError("oidc.bad_request", "the address holds an invalid value")
        params[name] = value
    return params


def _return_path(value: str | None) -> str:
    """A path on this site to land on after sign-in; anything else becomes the console's home
    (so the sign-in link cannot send an operator off-site)."""
    if (
        not value
        or len(value) > MAX_RETURN
        or not value.startswith("/")
        or value.startswith("//")
        or "\\" in value
        or not value.isascii()
        or not value.isprintable()
    ):
        return DEFAULT_RETURN
    return value


def failure_page(error: OidcError) -> HTMLResponse:
    """The page a refused sign-in gets: what failed, briefly, and a way back."""
    body = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>Sign-in failed</title></head><body><h1>Sign-in failed</h1>"
        f"<p>{html.escape(error.message)}.</p><p><code>{html.escape(error.code)}</code></p>"
        f'<p><a href="{DEFAULT_RETURN}">Back to the console</a></p></body></html>'
    )
    headers = {**_NO_STORE, "Content-Security-Policy": "default-src 'none'"}
    return HTMLResponse(body, status_code=error.status, headers=headers)


def _refused(exc: Exception, what: str) -> HTMLResponse:
    """The failure page for `exc`; anything but an `OidcError` is logged by its type only (its
    text or trace could hold a code or a token) and shown as a generic failure, never a 5xx."""
    if isinstance(exc, OidcError):
        logger.info("OpenID Connect sign-in %s: %s", what, exc.code)
        return failure_page(exc)
    logger.error("OpenID Connect sign-in %s unexpectedly: %s", what, type(exc).__name__)
    return failure_page(OidcError("oidc.failed", "something went wrong"))


def oidc_routes(
    client: OidcClient, on_identity: OnIdentity, *, signer: TokenSigner, secure_cookies: bool
) -> list[BaseRoute]:
    """The sign-in redirect and the callback. `on_identity(request, identity)` answers a
    verified sign-in; it may raise `OidcError` to refuse one with the failure page (e.g. no
    such operator), anything else it raises goes to the app's error handlers. The return path
    asked for is in `request.state.oidc_return_to`, always a local path."""
    cookie = PendingCookie(signer, secure=secure_cookies)

    async def sign_in(request: Request) -> Response:
        try:
            return_to = _return_path(_query(request).get("next"))
            url, pending = await client.begin(return_to)
        except Exception as exc:
            return _refused(exc, "could not start")
        response = RedirectResponse(url, status_code=302, headers=_NO_STORE)
        cookie.set(response, pending)
        return response

    async def callback(request: Request) -> Response:
        if request.method != "GET":  # Starlette adds HEAD: a prefetch must not spend the code
            return failure_page(OidcError("oidc.bad_request", "open this address with GET"))
        try:
            params = _query(request)
            pending = cookie.read(request)
            identity = await client.finish(pending, params)
        except Exception as exc:
            response = _refused(exc, "refused")
        else:
            request.state.oidc_return_to = pending.return_to
            try:
                response = await on_identity(request, identity)
            except OidcError as exc:  # on_identity's own refusal, e.g. no such operator
                response = _refused(exc, "refused")
        # Whatever happened, this pending login is spent: a replayed callback finds none.
        cookie.clear(response)
        return response

    return [
        Route(SIGN_IN_PATH, sign_in, methods=["GET"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
    ]
