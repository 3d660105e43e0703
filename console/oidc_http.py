"""HTTP to the identity provider, bounded: timeouts, no redirects, no compressed bodies, and a
transport that refuses any body over a size limit, so a slow, huge or hostile provider answer
costs the hub a bounded amount of time and memory.

It is built on the HTTP module Authlib's `AsyncOAuth2Client` is built on (httpx, or httpx2
where that is installed), so the same transport serves the token exchange and the discovery
and JWKS fetches.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from typing import Any

from console.oidc_errors import OidcError

with warnings.catch_warnings():
    # Authlib 1.7+ prefers httpx2 and warns when it falls back to httpx, which the hub uses.
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError
    from authlib.integrations.httpx_client import oauth2_client as _authlib_client

http = _authlib_client.httpx2

__all__ = ["AsyncOAuth2Client", "OAuthError", "bounded_client_kwargs", "fetch_json", "http"]

logger = logging.getLogger("console.oidc")


class ResponseTooLarge(http.TransportError):
    """The provider's answer is over the size bound (or compressed, so of unknown size)."""


class _CappedStream(http.AsyncByteStream):
    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._stream:
            seen += len(chunk)
            if seen > self._limit:
                raise ResponseTooLarge(f"answer over {self._limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class BoundedTransport(http.AsyncBaseTransport):
    """Refuses a body over `limit` bytes, by its Content-Length or as it streams in."""

    def __init__(self, limit: int) -> None:
        self._inner = http.AsyncHTTPTransport(retries=0)
        self._limit = limit

    async def handle_async_request(self, request: Any) -> Any:
        response = await self._inner.handle_async_request(request)
        length = response.headers.get("content-length", "0")
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        # A compressed body's decoded size is unknown until decoded: refuse it outright.
        if not length.isdigit() or int(length) > self._limit or encoding not in ("", "identity"):
            await response.aclose()
            raise ResponseTooLarge("answer too large or compressed")
        return http.Response(
            response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._limit),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def bounded_client_kwargs(timeout: float, max_bytes: int) -> dict[str, Any]:
    """The keyword arguments of an HTTP client (plain or Authlib's) with the bounds above."""
    return {
        "timeout": http.Timeout(timeout),
        "transport": BoundedTransport(max_bytes),
        "follow_redirects": False,
        "headers": {"Accept-Encoding": "identity", "User-Agent": "notification-hub"},
    }


async def fetch_json(client: Any, url: str, what: str) -> dict[str, Any]:
    """The JSON object at `url`; `OidcError("oidc.unavailable")` for anything else."""
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
        body = response.json() if response.status_code == 200 else None
    except (http.HTTPError, ValueError) as exc:
        logger.warning("OpenID Connect: fetching the %s failed: %s", what, type(exc).__name__)
        raise OidcError("oidc.unavailable", "the identity provider could not be reached") from None
    if not isinstance(body, dict):
        logger.warning(
            "OpenID Connect: the %s answered HTTP %s, not a JSON object", what, response.status_code
        )
        raise OidcError("oidc.unavailable", "the identity provider answered something unusable")
    return body
