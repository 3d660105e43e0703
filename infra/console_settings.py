"""The operator console's settings (`HUB_CONSOLE_*`), read by `infra/settings.py`.

Kept apart so the console's session lifetimes and its OpenID Connect client are read,
bounded and documented in one place without growing the main settings module further.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def oidc_url_problem(url: str, what: str) -> str | None:
    """Why `url` cannot be an OpenID Connect endpoint of the console, or None: https, or
    http on a loopback host (a provider the tests or a developer run locally)."""
    parts = urlsplit(url)
    if parts.netloc and (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
    ):
        return None
    return f"{what} must be an https URL (http only on localhost): {url!r}"


@dataclass(frozen=True)
class ConsoleSettings:
    """Session lifetimes (seconds; the environment gives minutes and hours) and the OIDC
    client of the console's single sign-on (all None: password sign-in only)."""

    idle_seconds: int = 30 * 60
    absolute_seconds: int = 12 * 3600
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_name: str = "single sign-on"

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    def oidc_problem(self, public_url: str) -> str | None:
        """Why single sign-on cannot work as configured, or None (also when it is off)."""
        given = [self.oidc_issuer, self.oidc_client_id, self.oidc_client_secret]
        if not any(given):
            return None
        if not all(given):
            return (
                "console single sign-on needs HUB_CONSOLE_OIDC_ISSUER, HUB_CONSOLE_OIDC_CLIENT_ID"
                " and HUB_CONSOLE_OIDC_CLIENT_SECRET (or _CLIENT_SECRET_FILE) together"
            )
        return oidc_url_problem(
            self.oidc_issuer or "", "HUB_CONSOLE_OIDC_ISSUER"
        ) or oidc_url_problem(public_url, "with console single sign-on, HUB_PUBLIC_URL")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        whole_number: Callable[..., int],
        read_file: Callable[[str, str], str],
    ) -> ConsoleSettings:
        """`whole_number(env, name, default, minimum, maximum)` and `read_file(name, path)`
        are the main settings' own parsers, so errors read the same everywhere."""
        secret = env.get("HUB_CONSOLE_OIDC_CLIENT_SECRET") or None
        secret_file = env.get("HUB_CONSOLE_OIDC_CLIENT_SECRET_FILE")
        if secret_file:
            secret = read_file("HUB_CONSOLE_OIDC_CLIENT_SECRET_FILE", secret_file).strip()
        idle = whole_number(env, "HUB_CONSOLE_IDLE_MINUTES", cls.idle_seconds // 60, 1, 7 * 24 * 60)
        hours = whole_number(
            env, "HUB_CONSOLE_SESSION_HOURS", cls.absolute_seconds // 3600, 1, 30 * 24
        )
        return cls(
            idle_seconds=idle * 60,
            absolute_seconds=hours * 3600,
            oidc_issuer=(env.get("HUB_CONSOLE_OIDC_ISSUER") or "").rstrip("/") or None,
            oidc_client_id=env.get("HUB_CONSOLE_OIDC_CLIENT_ID") or None,
            oidc_client_secret=secret,
            oidc_name=env.get("HUB_CONSOLE_OIDC_NAME") or cls.oidc_name,
        )
