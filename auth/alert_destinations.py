"""Where a product's security alerts go besides the log: its JSON webhook, a Slack-compatible
incoming webhook, and email to its owners and admins. Each product chooses its own.

A destination only sends what `auth.alerts` decided (the alert and whether it is a repeat are
settled there, once). Each one handles its own failures and logs them without the URL, since
webhook URLs, Slack's above all, carry their secret in the path: the Slack host at most.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from auth.alert_content import Alert
from auth.alert_posts import PinnedPoster
from auth.mail import Mailer, OutgoingMail
from auth.products import Product
from auth.webhook_targets import BlockedTarget
from infra.metrics import ALERT_WEBHOOKS_REFUSED

logger = logging.getLogger("auth.alerts")

ALERT_MAIL_KIND = "security_alert"  # the X-Hub-Mail header of an alert email
# More owners and admins than this are not all mailed (the first ones are).
MAX_MAIL_RECIPIENTS = 50
MAIL_TIMEOUT = 10.0


class AlertRecipients(Protocol):
    """Who is mailed a product's alerts: its owners and admins in the operator console."""

    async def alert_emails(self, product_id: int) -> list[str]: ...


class NoAlertRecipients:
    """Nobody: for a hub built without the console's member list (hub/app.py passes
    `console.alert_recipients.ConsoleAlertRecipients` unless told otherwise)."""

    async def alert_emails(self, product_id: int) -> list[str]:
        return []


class AlertDestination(Protocol):
    name: str

    def wants(self, product: Product) -> bool: ...

    async def send(self, alert: Alert) -> None: ...


class WebhookDestination:
    """The product's `alert_webhook_url`: the alert as JSON."""

    name = "webhook"

    def __init__(self, poster: PinnedPoster) -> None:
        self._poster = poster

    def wants(self, product: Product) -> bool:
        return bool(product.alert_webhook_url)

    async def send(self, alert: Alert) -> None:
        assert alert.product.alert_webhook_url is not None
        # Where: the product only (the URL itself often carries a secret in its path).
        where = f"alert webhook of product={alert.product.slug}"
        await _post(self._poster, alert.product.alert_webhook_url, alert.payload(), where)


class SlackDestination:
    """The product's `alert_slack_url`, a Slack incoming webhook: `{"text": …}` in the
    product's language."""

    name = "slack"

    def __init__(self, poster: PinnedPoster) -> None:
        self._poster = poster

    def wants(self, product: Product) -> bool:
        return bool(product.alert_slack_url)

    async def send(self, alert: Alert) -> None:
        url = alert.product.alert_slack_url
        assert url is not None
        # A Slack webhook URL is a bearer secret: only its host may be logged.
        where = f"alert slack of product={alert.product.slug} host={urlsplit(url).hostname}"
        text = alert.slack_text(alert.product.default_locale)
        await _post(self._poster, url, {"text": text}, where)


async def _post(poster: PinnedPoster, url: str, payload: dict[str, object], where: str) -> None:
    try:
        status = await poster.post(url, payload)
        if status >= 300:
            logger.warning("%s answered %s", where, status)
    except BlockedTarget as exc:
        ALERT_WEBHOOKS_REFUSED.inc()
        logger.warning("%s refused: %s", where, exc)
    except (httpx.HTTPError, httpx.InvalidURL, OSError, TimeoutError, ValueError) as exc:
        logger.warning("%s unreachable: %s", where, type(exc).__name__)


class EmailDestination:
    """One plain-text email per alert to each of the product's owners and admins, through
    the hub's mailer, in the product's language, from the product's sender."""

    name = "email"

    def __init__(self, mailer: Mailer, recipients: AlertRecipients, mail_from: str) -> None:
        self._mailer = mailer
        self._recipients = recipients
        self._mail_from = mail_from

    def wants(self, product: Product) -> bool:
        return product.alert_email

    async def send(self, alert: Alert) -> None:
        product = alert.product
        try:
            found = await self._recipients.alert_emails(product.id)
        except Exception as exc:  # the member list is another floor's: whatever it raises
            logger.warning("alert email of product=%s: no recipients (%s)", product.slug, exc)
            return
        addresses = list(dict.fromkeys(a.strip() for a in found if a and a.strip()))
        if len(addresses) > MAX_MAIL_RECIPIENTS:
            logger.warning(
                "alert email of product=%s: %d recipients, the first %d mailed",
                product.slug,
                len(addresses),
                MAX_MAIL_RECIPIENTS,
            )
        locale = product.default_locale
        subject, body = alert.subject(locale), alert.mail_body(locale)
        mails = [
            OutgoingMail(
                to=address,
                from_name=product.mail_from_name or product.name,
                from_address=product.mail_from_address or self._mail_from,
                subject=subject,
                body=body,
                kind=ALERT_MAIL_KIND,
            )
            for address in addresses[:MAX_MAIL_RECIPIENTS]
        ]
        # Concurrently, each bounded: one dead mailbox must not hold up the others.
        await asyncio.gather(*(self._send_one(product.slug, mail) for mail in mails))

    async def _send_one(self, slug: str, mail: OutgoingMail) -> None:
        try:
            async with asyncio.timeout(MAIL_TIMEOUT):
                await self._mailer.send(mail)
        except Exception as exc:  # SMTP refusals, timeouts, a header the mail library refuses
            logger.warning("alert email of product=%s not sent: %s", slug, type(exc).__name__)
