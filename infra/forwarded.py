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

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

HEADER = b"x-forwarded-proto"


def canonical_proto(value: bytes) -> bytes:
    """`HTTPS` → `https`; `https, http` → `https` (the first hop is the client's)."""
    return value.split(b",", 1)[0].strip().lower()


class CanonicalForwardedProto:
    """Rewrites `X-Forwarded-Proto` to its canonical form; everything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and any(
            name == HEADER for name, _ in scope["headers"]
        ):
            headers = [
                (name, canonical_proto(value) if name == HEADER else value)
                for name, value in scope["headers"]
            ]
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


def behind_proxies(app: ASGIApp, trusted_proxies: str) -> ASGIApp:
    """`app` as uvicorn's `proxy_headers=True` would wrap it (client address and scheme
    from trusted proxies), with the scheme header made canonical first. Serve the result
    with `proxy_headers=False`, so it is not wrapped twice."""
    return CanonicalForwardedProto(ProxyHeadersMiddleware(app, trusted_hosts=trusted_proxies))
