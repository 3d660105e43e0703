"""POSTing an alert to a URL a product chose, without letting that URL reach inside the hub.

The JSON webhook and the Slack incoming webhook both go through here, so both get the same
protection (`auth.webhook_targets`): the host is resolved once, every answer judged (unless
internal targets are allowed), and the request goes to that IP with the URL's Host header, TLS
SNI and certificate check against the URL's name. No redirect is followed, the response body
is never read, and the whole send is bounded in time.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import httpx

from auth.webhook_targets import Resolver, Target, literal_address, resolve_target, system_resolve

POST_TIMEOUT = 5.0


class PinnedPoster:
    """POSTs JSON to the checked address of a URL; raises `BlockedTarget` for an internal
    one, an `httpx.HTTPError`, `OSError` or `TimeoutError` when it cannot be reached."""

    def __init__(
        self,
        user_agent: str,
        *,
        allow_internal: bool = False,
        resolver: Resolver = system_resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._http = httpx.AsyncClient(
            timeout=POST_TIMEOUT,
            headers={"User-Agent": user_agent},
            follow_redirects=False,
            # No proxy from the environment: the request must go to the address we checked.
            trust_env=False,
            # A fresh connection per alert: pooled connections are keyed by IP, and one opened
            # (and certificate-checked) for one name must not carry a request for another.
            limits=httpx.Limits(max_keepalive_connections=0),
            verify=verify,
        )
        self._allow_internal = allow_internal
        self._resolver = resolver

    async def post(self, url: str, payload: dict[str, Any]) -> int:
        """The answer's status code (a redirect is an answer, never followed)."""
        async with asyncio.timeout(POST_TIMEOUT):
            target = await resolve_target(
                url, resolver=self._resolver, allow_internal=self._allow_internal
            )
            return await self._send(url, target, payload)

    async def _send(self, url: str, target: Target, payload: dict[str, Any]) -> int:
        """POST to the checked addresses in order (the next only if one refuses to connect)."""
        original = httpx.URL(url)
        headers = {"Host": original.netloc.decode("ascii")}
        extensions: dict[str, Any] = {}
        if original.scheme == "https" and literal_address(target.host) is None:
            # SNI and certificate verification against the name, not the IP we dial.
            extensions["sni_hostname"] = original.raw_host.decode("ascii")
        failure: httpx.ConnectError | None = None
        for address in target.addresses:
            pinned = original.copy_with(host=str(address))
            try:
                async with self._http.stream(
                    "POST", pinned, json=payload, headers=headers, extensions=extensions
                ) as response:
                    return response.status_code
            except httpx.ConnectError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def close(self) -> None:
        await self._http.aclose()
