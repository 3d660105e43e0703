"""Which scheme a client used, as a trusted proxy reports it in `X-Forwarded-Proto`.

uvicorn's `ProxyHeadersMiddleware` takes the scheme from a trusted proxy only when the header
is exactly `http`, `https`, `ws` or `wss`; `HTTPS`, or a chain such as `https, http` (each
proxy appending its own hop), leaves the request counted as plain HTTP, and in production a
server key that arrives over plain HTTP is revoked as compromised. So before uvicorn reads
it, the header is made canonical: its first value (the client-facing hop), trimmed and
lowercased. Trust stays uvicorn's decision: the canonical value still counts only when the
peer is in `HUB_TRUSTED_PROXIES`.
"""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

HEADER = b"x-forwarded-proto"


def canonical_proto(value: bytes) -> bytes:
    """`HTTPS` → `https`; `https, http` → `https` (the first hop is the client's)."""
    return value.split(b",", 1)[0].strip().lower()


async def _nothing(scope: Scope, receive: Receive, send: Send) -> None:
    return None


class TrustedProxies:
    """Client address and scheme from trusted proxies, as uvicorn's `proxy_headers=True`
    would set them, with the scheme header made canonical first.

    uvicorn's `ProxyHeadersMiddleware` decides the trust (kept: it is security code). It
    rewrites the scope in place and then awaits the app, so here it runs around an app that
    does nothing, which finishes at its first step; the hub's app is then returned, not
    awaited. This layer therefore keeps no coroutine of its own alive for the request's
    length (a cable socket's is hours)."""

    def __init__(self, app: ASGIApp, trusted_proxies: str) -> None:
        self.app = app
        self._resolve = ProxyHeadersMiddleware(_nothing, trusted_hosts=trusted_proxies)

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] in ("http", "websocket"):
            if any(name == HEADER for name, _ in scope["headers"]):
                headers = [
                    (name, canonical_proto(value) if name == HEADER else value)
                    for name, value in scope["headers"]
                ]
                scope = {**scope, "headers": headers}
            step = self._resolve(scope, receive, send)
            try:
                step.send(None)
            except StopIteration:
                pass
            else:  # uvicorn's middleware awaits only the app it was given
                step.close()
                raise RuntimeError("ProxyHeadersMiddleware waited on something")
        return self.app(scope, receive, send)


def behind_proxies(app: ASGIApp, trusted_proxies: str) -> ASGIApp:
    """`app` as uvicorn's `proxy_headers=True` would wrap it (client address and scheme
    from trusted proxies), with the scheme header made canonical first. Serve the result
    with `proxy_headers=False`, so it is not wrapped twice."""
    return TrustedProxies(app, trusted_proxies)
