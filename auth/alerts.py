"""Security alerts: a credential used where it must not be, or a burst of bad credentials.

Every alert goes to the log (logger `auth.alerts`, level WARNING) and to the destinations its
product chose (`auth.alert_destinations`): the JSON webhook (`alert_webhook_url`), a Slack
incoming webhook (`alert_slack_url`) and email to the product's owners and admins
(`alert_email`). An alert names the credential by its id and non-secret prefix only, never
the secret. One (product, event, credential) is alerted at most once a minute, decided here
once for every destination, so an attacker replaying a leaked key cannot flood the log, the
webhooks or anyone's inbox.

Destinations send in background tasks, each bounded in time and independent of the others, so
a slow or failing one never delays the request that raised the alert nor stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from typing import Any

from auth import alert_posts
from auth.alert_content import Alert
from auth.alert_destinations import (
    MAIL_TIMEOUT,
    AlertDestination,
    AlertRecipients,
    EmailDestination,
    NoAlertRecipients,
    SlackDestination,
    WebhookDestination,
)
from auth.alert_posts import PinnedPoster
from auth.mail import Mailer
from auth.products import Product
from auth.webhook_targets import Resolver, system_resolve
from infra.db import utcnow

logger = logging.getLogger("auth.alerts")

REPEAT_SECONDS = 60.0
# More failed key lookups than this from one client address in the window is a burst.
FAILED_LOOKUP_BURST = 20
FAILED_LOOKUP_WINDOW = 60.0
# Sends in flight at most; past it an alert reaches the log only (and says so).
MAX_PENDING_SENDS = 1000

# The events, for the README and the webhook's consumers.
REVOKED_KEY_USED = "revoked_key_used"
COMPROMISED_KEY = "key_compromised"
KEY_IN_BROWSER = "secret_key_in_browser"
FAILED_LOOKUPS = "failed_key_lookups"

# Details that describe the request rather than the credential: reported, never deduplicated on.
CALLER_DETAILS = frozenset({"origin"})


class SecurityAlerts:
    def __init__(
        self,
        user_agent: str = "notification-hub security alerts",
        *,
        allow_internal: bool = False,
        resolver: Resolver = system_resolve,
        verify: ssl.SSLContext | bool = True,
        mailer: Mailer | None = None,
        recipients: AlertRecipients | None = None,
        mail_from: str = "no-reply@localhost",
    ) -> None:
        """`allow_internal` lets the webhooks reach private addresses (development, tests,
        HUB_WEBHOOKS_ALLOW_INTERNAL); without a `mailer` no alert is mailed; `recipients`
        says who is mailed (nobody by default)."""
        self._poster = PinnedPoster(
            user_agent, allow_internal=allow_internal, resolver=resolver, verify=verify
        )
        self._destinations: list[AlertDestination] = [
            WebhookDestination(self._poster),
            SlackDestination(self._poster),
        ]
        if mailer is not None:
            self._destinations.append(
                EmailDestination(mailer, recipients or NoAlertRecipients(), mail_from)
            )
        self._last_sent: dict[tuple[Any, ...], float] = {}
        self._failures: dict[str, deque[float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def fire(
        self,
        event: str,
        product: Product | None,
        env: str | None = None,
        *,
        client_ip: str | None = None,
        **details: Any,
    ) -> None:
        """Log the alert and hand it to the product's destinations, at most once a minute per
        (event, product, environment, details); what the caller sends (its address, its
        `Origin`) does not make it new, or a leaked key replayed from ever new origins would
        raise an alert per request."""
        now = time.monotonic()
        named = tuple(sorted((k, v) for k, v in details.items() if k not in CALLER_DETAILS))
        dedupe = (event, product.id if product else None, env, named)
        if now - self._last_sent.get(dedupe, float("-inf")) < REPEAT_SECONDS:
            return
        self._last_sent[dedupe] = now
        if len(self._last_sent) > 10_000:
            self._last_sent = {k: t for k, t in self._last_sent.items() if now - t < REPEAT_SECONDS}
        logger.warning(
            "security alert %s product=%s env=%s client=%s %s",
            event,
            product.slug if product else "-",
            env or "-",
            client_ip or "-",
            " ".join(f"{k}={v}" for k, v in sorted(details.items())),
        )
        if product is None:
            return
        alert = Alert(event, product, env, utcnow(), client_ip, details)
        for destination in self._destinations:
            if destination.wants(product):
                self._start(destination, alert)

    def _start(self, destination: AlertDestination, alert: Alert) -> None:
        if len(self._pending) >= MAX_PENDING_SENDS:
            logger.warning(
                "alert %s of product=%s not sent: %d sends in flight",
                destination.name,
                alert.product.slug,
                len(self._pending),
            )
            return
        task = asyncio.get_running_loop().create_task(self._deliver(destination, alert))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, destination: AlertDestination, alert: Alert) -> None:
        # Each destination reports its own failures; this is the backstop that keeps any
        # other exception (or a send that outlives its bound) from escaping a background task.
        try:
            async with asyncio.timeout(_send_bound()):
                await destination.send(alert)
        except Exception as exc:
            logger.warning(
                "alert %s of product=%s failed: %s",
                destination.name,
                alert.product.slug,
                type(exc).__name__,
            )

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

    async def close(self) -> None:
        if self._pending:
            # Each send bounds itself; the extra second lets it log why it gave up.
            await asyncio.wait(set(self._pending), timeout=_send_bound() + 1)
        await self._poster.close()


def _send_bound() -> float:
    """The longest any destination may take (read when used: tests shorten the post's)."""
    return max(alert_posts.POST_TIMEOUT, MAIL_TIMEOUT) + 1
