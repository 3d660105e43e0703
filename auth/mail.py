"""Outgoing mail: white-labeled password reset and email verification emails, sent by SMTP or
to the console.

`SMTP_URL` selects SMTP (`smtp://user:pass@host:587?starttls=true`, or `smtps://…` for implicit
TLS). Without it the console mailer writes the email to the log: in development in full, since
that is how a developer gets the reset link; in production without the body, because the link
is a credential.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from infra.i18n import translate

logger = logging.getLogger("auth.mail")


@dataclass(frozen=True)
class OutgoingMail:
    to: str
    from_name: str
    from_address: str
    subject: str
    body: str
    # Which mail this is (`password_reset`, `verify_email`), sent as the X-Hub-Mail header so
    # mail filters and tests can tell them apart in any language.
    kind: str = ""


PASSWORD_RESET = "password_reset"  # noqa: S105 (a mail kind, not a secret)
VERIFY_EMAIL = "verify_email"
MAIL_KINDS = (PASSWORD_RESET, VERIFY_EMAIL)


def branded_mail(
    kind: str,
    *,
    to: str,
    user_name: str,
    locale: str,
    product_name: str,
    from_name: str | None,
    from_address: str,
    link: str,
    ttl_seconds: int,
) -> OutgoingMail:
    """A mail of `kind` in the product's name and the user's language, carrying a one-time
    `link`. Its words are the catalog's (`mail.<kind>.subject` and `.body` in
    `infra.locales.texts`), English where the language has none."""
    if kind not in MAIL_KINDS:
        raise ValueError(f"no mail of kind {kind!r}")
    values = {
        "name": user_name or to,
        "product": product_name,
        "link": link,
        "minutes": max(1, ttl_seconds // 60),
    }
    return OutgoingMail(
        to=to,
        from_name=from_name or product_name,
        from_address=from_address,
        subject=translate(f"mail.{kind}.subject", locale, **values),
        body=translate(f"mail.{kind}.body", locale, **values),
        kind=kind,
    )


class Mailer(Protocol):
    async def send(self, mail: OutgoingMail) -> None: ...


def _mime(mail: OutgoingMail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((mail.from_name, mail.from_address))
    message["To"] = mail.to
    message["Subject"] = mail.subject
    if mail.kind:
        message["X-Hub-Mail"] = mail.kind
    message.set_content(mail.body)
    return message


class SmtpMailer:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587?starttls=true")
        options = parse_qs(parts.query)
        self._host = parts.hostname
        self._port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._use_tls = parts.scheme == "smtps"
        self._start_tls = options.get("starttls", ["false"])[0].lower() in ("1", "true", "yes")

    async def send(self, mail: OutgoingMail) -> None:
        await aiosmtplib.send(
            _mime(mail),
            hostname=self._host,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._use_tls,
            start_tls=self._start_tls,
            timeout=30,
        )


class ConsoleMailer:
    def __init__(self, *, show_body: bool) -> None:
        self._show_body = show_body

    async def send(self, mail: OutgoingMail) -> None:
        if self._show_body:
            # The one sanctioned place a secret (the reset link) reaches a log: development only.
            logger.info(
                "console mail (development, no SMTP_URL)\nTo: %s\nSubject: %s\n\n%s",
                mail.to,
                mail.subject,
                mail.body,
                extra={"hub_allow_secret": True},
            )
        else:
            logger.warning("no SMTP_URL configured: an email (%r) was not sent", mail.subject)


def make_mailer(smtp_url: str | None, *, development: bool) -> Mailer:
    if smtp_url:
        return SmtpMailer(smtp_url)
    return ConsoleMailer(show_body=development)
