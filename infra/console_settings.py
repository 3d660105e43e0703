"""The operator console's settings (`HUB_CONSOLE_*`), read by `infra/settings.py`.

Kept apart so the console's session lifetimes and its OpenID Connect client are read,
bounded and documented in one place without growing the main settings module further.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


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
