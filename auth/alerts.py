"""Security alerts: a credential used where it must not be, or a burst of bad credentials.

Every alert goes to the log (logger `auth.alerts`, level WARNING) and, when the product has an
`alert_webhook_url`, is POSTed there as JSON in the background. An alert names the credential
by its id and non-secret prefix only, never the secret. One (product, event, credential) is
alerted at most once a minute, so an attacker replaying a leaked key cannot flood the
product's webhook or the log.

A webhook is sent to the address that was checked (`auth.webhook_targets`): the host is
resolved once, every answer judged (unless internal targets are allowed), and the request goes
to that IP with the URL's Host header, TLS SNI and certificate check against the URL's name.
No redirect is followed, the response body is never read, and the whole send is bounded.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from typing import Any

import httpx

from auth.products import Product
from auth.webhook_targets import (
    BlockedTarget,
    Resolver,
    Target,
    literal_address,
    resolve_target,
    system_resolve,
)
from infra.db import utcnow
from infra.metrics import ALERT_WEBHOOKS_REFUSED

logger = logging.getLogger("auth.alerts")

REPEAT_SECONDS = 60.0
WEBHOOK_TIMEOUT = 5.0
# More failed key lookups than this from one client address in the window is a burst.
FAILED_LOOKUP_BURST = 20
FAILED_LOOKUP_WINDOW = 60.0

# The events, for the README and the webhook's consumers.
REVOKED_KEY_USED = "revoked_key_used"
COMPROMISED_KEY = "key_compromised"
KEY_IN_BROWSER = "secret_key_in_browser"
FAILED_LOOKUPS = "failed_key_lookups"


class SecurityAlerts:
    def __init__(
        self,
        user_agent: str = "notification-hub security alerts",
        *,
        allow_internal: bool = False,
        resolver: Resolver = system_resolve,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._http = httpx.AsyncClient(
            timeout=WEBHOOK_TIMEOUT,
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
        self._last_sent: dict[tuple[Any, ...], float] = {}
        self._failures: dict[str, deque[float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def fire(
        self, event: str, product: Product | None, env: str | None = None, **details: Any
    ) -> None:
        """Log the alert and send it to the product's webhook (at most once a minute)."""
        now = time.monotonic()
        dedupe = (event, product.id if product else None, env, tuple(sorted(details.items())))
        if now - self._last_sent.get(dedupe, float("-inf")) < REPEAT_SECONDS:
            return
        self._last_sent[dedupe] = now
        if len(self._last_sent) > 10_000:
            self._last_sent = {k: t for k, t in self._last_sent.items() if now - t < REPEAT_SECONDS}
        logger.warning(
            "security alert %s product=%s env=%s %s",
            event,
            product.slug if product else "-",
            env or "-",
            " ".join(f"{k}={v}" for k, v in sorted(details.items())),
        )
        if product is not None and product.alert_webhook_url:
            payload = {
                "type": "security_alert",
                "event": event,
                "product": product.slug,
                "env": env,
                "at": utcnow().isoformat().replace("+00:00", "Z"),
                "details": details,
            }
            task = asyncio.get_running_loop().create_task(
                self._post(product.slug, product.alert_webhook_url, payload)
            )
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def failed_lookup(self, client: str) -> None:
        """Count a credential that matched nothing; a burst from one address is alerted."""
        now = time.monotonic()
        seen = self._failures.setdefault(client, deque())
        seen.append(now)
        while seen and now - seen[0] > FAILED_LOOKUP_WINDOW:
            seen.popleft()
        if len(seen) > FAILED_LOOKUP_BURST:
            # Unknown keys name no product, so this one goes to the log only.
            self.fire(FAILED_LOOKUPS, None, client=client, window_seconds=FAILED_LOOKUP_WINDOW)
        if len(self._failures) > 10_000:
            self._failures = {c: d for c, d in self._failures.items() if d and now - d[-1] < 60}

    async def _post(self, slug: str, url: str, payload: dict[str, Any]) -> None:
        # The URL itself is not logged: webhook URLs often carry a secret in their path.
        try:
            async with asyncio.timeout(WEBHOOK_TIMEOUT):
                target = await resolve_target(
                    url, resolver=self._resolver, allow_internal=self._allow_internal
                )
                status = await self._send(url, target, payload)
            if status >= 300:
                logger.warning("alert webhook of product=%s answered %s", slug, status)
        except BlockedTarget as exc:
            ALERT_WEBHOOKS_REFUSED.inc()
            logger.warning("alert webhook of product=%s refused: %s", slug, exc)
        except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError, ValueError) as exc:
            logger.warning("alert webhook of product=%s unreachable: %s", slug, type(exc).__name__)

    async def _send(self, url: str, target: Target, payload: dict[str, Any]) -> int:
        """POST to the checked addresses in order (the next only if one refuses to connect);
        the answer's status code."""
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
        if self._pending:
            # Each send bounds itself to WEBHOOK_TIMEOUT; the extra second lets it log why.
            await asyncio.wait(set(self._pending), timeout=WEBHOOK_TIMEOUT + 1)
        await self._http.aclose()
