"""The one exception every refused OpenID Connect sign-in raises, so the callback page has a
single thing to catch and turn into a short, safe message: a stable code and a sentence that
never carries a code, token or secret."""

from __future__ import annotations

# Refusals that are the caller's malformed request or an unreachable provider (400); every
# other code is a sign-in the hub refuses on purpose (403). Never a 5xx: a browser page.
_BAD_REQUEST = frozenset({"oidc.bad_request", "oidc.unavailable"})


class OidcError(Exception):
    """A refused sign-in: `code` is stable (`oidc.state_mismatch`, `oidc.provider_error`,
    `oidc.code_refused`, `oidc.bad_token`, `oidc.issuer_mismatch`, `oidc.unavailable`,
    `oidc.bad_request`; on_identity may add its own, e.g. `oidc.not_allowed`), `message`
    a short sentence safe to show and to log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return 400 if self.code in _BAD_REQUEST else 403
