"""What a security alert says, decided once per alert and rendered for each destination.

An alert names the product, the event, the credential by its table, id and non-secret prefix,
the client's IP address and the time; never the secret. The JSON webhook gets it as data, Slack
and email as plain text in the product's language (the catalog's `alert.*` texts). Values that
came from the request (an `Origin` header) are cut short, and Slack's control characters
(`<`, `>`, `&`) escaped, so an attacker cannot make an alert ping a channel or carry a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auth.products import Product
from infra.i18n import translate

# A request-chosen value (an Origin header) is shown at most this long.
MAX_DETAIL_CHARS = 200
# Shown as the credential; everything else in `details` follows as `name: value` lines.
_CREDENTIAL_NAMES = ("credential", "credential_id", "prefix")


@dataclass(frozen=True)
class Alert:
    event: str
    product: Product
    env: str | None
    at: datetime
    client_ip: str | None
    # The credential's names (`Stored.names()`) and what else the event knows, never a secret.
    details: dict[str, Any]

    @property
    def at_text(self) -> str:
        return self.at.isoformat(timespec="seconds").replace("+00:00", "Z")

    def payload(self) -> dict[str, Any]:
        """The JSON webhook's body."""
        return {
            "type": "security_alert",
            "event": self.event,
            "product": self.product.slug,
            "env": self.env,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "client_ip": self.client_ip,
            "details": self.details,
        }

    def title(self, locale: str) -> str:
        return translate(f"alert.event.{self.event}", locale)

    def subject(self, locale: str) -> str:
        return translate(
            "alert.subject", locale, product=self.product.name, title=self.title(locale)
        )

    def facts(self, locale: str) -> str:
        """One line per fact: product, event, environment, credential, client IP, time, then
        any other detail."""
        credential = "-"
        if "prefix" in self.details:
            credential = (
                f"{_short(self.details['prefix'])}… ({_short(self.details.get('credential'))}"
                f" #{_short(self.details.get('credential_id'))})"
            )
        lines = translate(
            "alert.facts",
            locale,
            product=f"{self.product.name} ({self.product.slug})",
            event=self.event,
            env=self.env or "-",
            credential=credential,
            client=self.client_ip or "-",
            at=self.at_text,
        )
        extra = [
            f"{name}: {_short(value)}"
            for name, value in sorted(self.details.items())
            if name not in _CREDENTIAL_NAMES
        ]
        return "\n".join([lines, *extra])

    def mail_body(self, locale: str) -> str:
        return translate(
            "alert.body",
            locale,
            title=self.title(locale),
            facts=self.facts(locale),
            product=self.product.name,
        )

    def slack_text(self, locale: str) -> str:
        """Slack's `text`: the subject in bold, then the facts (escaped for Slack)."""
        return f"*{_slack_escape(self.subject(locale))}*\n{_slack_escape(self.facts(locale))}"


def _short(value: object) -> str:
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return text if len(text) <= MAX_DETAIL_CHARS else text[: MAX_DETAIL_CHARS - 1] + "…"


def _slack_escape(text: str) -> str:
    # Slack reads `<!channel>`, `<@U123>` and `<https://x|label>` as mentions and links.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
