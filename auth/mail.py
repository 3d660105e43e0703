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

logger = logging.getLogger("auth.mail")

RESET_SUBJECT = {
    "en": "Reset your {product} password",
    "cs": "Obnovení hesla k účtu {product}",
    "de": "Setzen Sie Ihr {product}-Passwort zurück",
}
RESET_BODY = {
    "en": (
        "Hello {name},\n\nsomeone asked to reset the password of your {product} account.\n"
        "Open this link within {minutes} minutes to choose a new one:\n\n{link}\n\n"
        "If it was not you, ignore this email; your password stays as it is.\n\n{product}"
    ),
    "cs": (
        "Dobrý den {name},\n\nněkdo požádal o obnovení hesla k vašemu účtu {product}.\n"
        "Nové heslo si zvolíte do {minutes} minut na tomto odkazu:\n\n{link}\n\n"
        "Pokud jste to nebyli vy, e-mail ignorujte; heslo zůstává beze změny.\n\n{product}"
    ),
    "de": (
        "Hallo {name},\n\njemand möchte das Passwort Ihres {product}-Kontos zurücksetzen.\n"
        "Öffnen Sie innerhalb von {minutes} Minuten diesen Link, um ein neues zu wählen:\n\n"
        "{link}\n\nWaren Sie das nicht, ignorieren Sie diese E-Mail; Ihr Passwort bleibt "
        "unverändert.\n\n{product}"
    ),
}


VERIFY_SUBJECT = {
    "en": "Confirm your email for {product}",
    "cs": "Potvrďte svůj e-mail pro {product}",
    "de": "Bestätigen Sie Ihre E-Mail-Adresse für {product}",
}
VERIFY_BODY = {
    "en": (
        "Hello {name},\n\nplease confirm that this is your email address for {product}.\n"
        "Open this link within {minutes} minutes:\n\n{link}\n\n"
        "If you did not sign up, do not open the link and ignore this email.\n\n{product}"
    ),
    "cs": (
        "Dobrý den {name},\n\npotvrďte prosím, že je to vaše e-mailová adresa pro {product}.\n"
        "Otevřete tento odkaz do {minutes} minut:\n\n{link}\n\n"
        "Pokud jste se neregistrovali, odkaz neotevírejte a e-mail ignorujte.\n\n{product}"
    ),
    "de": (
        "Hallo {name},\n\nbitte bestätigen Sie, dass dies Ihre E-Mail-Adresse für {product} "
        "ist.\nÖffnen Sie diesen Link innerhalb von {minutes} Minuten:\n\n{link}\n\n"
        "Haben Sie sich nicht registriert, öffnen Sie den Link nicht und ignorieren Sie diese "
        "E-Mail.\n\n{product}"
    ),
}


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
_TEMPLATES = {
    PASSWORD_RESET: (RESET_SUBJECT, RESET_BODY),
    VERIFY_EMAIL: (VERIFY_SUBJECT, VERIFY_BODY),
}


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
    `link`."""
    subjects, bodies = _TEMPLATES[kind]
    locale = locale if locale in subjects else "en"
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
        subject=subjects[locale].format(**values),
        body=bodies[locale].format(**values),
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
