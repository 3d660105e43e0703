"""The pending OpenID Connect login, carried by the browser in the short-lived cookie
`hub_console_oidc` between the redirect to the provider and the callback.

Its value is an ES256 JWT signed with the hub's own key (auth/tokens.py's `TokenSigner`), so the
browser can neither forge nor alter it; its own `type` and `aud` keep it from ever passing as an
access token (and an access token from passing as it). It is scoped to the callback's path, and
the callback clears it whatever happens, so a replayed callback finds no pending login.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth.tokens import InvalidToken, TokenSigner
from console.oidc import PendingLogin
from console.oidc_errors import OidcError

COOKIE = "hub_console_oidc"
CALLBACK_PATH = "/v1/auth/callback"
MAX_AGE = 600  # seconds a sign-in may take at the provider
PENDING_TYPE = "console_oidc_pending"
AUDIENCE = "notification-hub/console-oidc-pending"
_SUBJECT = "console-oidc"


class PendingCookie:
    """Writes, reads and clears the pending-login cookie."""

    def __init__(self, signer: TokenSigner, *, secure: bool) -> None:
        self._signer = signer
        self._secure = secure

    def set(self, response: Response, pending: PendingLogin) -> None:
        value, _ = self._signer.issue(
            PENDING_TYPE,
            {
                "sub": _SUBJECT,
                "aud": AUDIENCE,
                "state": pending.state,
                "nonce": pending.nonce,
                "cv": pending.code_verifier,
                "ret": pending.return_to,
                "created": pending.created_at,
            },
            MAX_AGE,
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=MAX_AGE,
            path=CALLBACK_PATH,
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )

    def read(self, request: Request) -> PendingLogin:
        """The genuine pending login this browser carries, else `OidcError`."""
        value = request.cookies.get(COOKIE)
        if not value:
            raise OidcError(
                "oidc.state_mismatch", "no sign-in is pending in this browser (or it expired)"
            )
        try:
            claims = self._signer.verify(value, PENDING_TYPE, audience=AUDIENCE)
        except InvalidToken:
            raise OidcError(
                "oidc.state_mismatch", "the pending sign-in is invalid or expired"
            ) from None
        fields = (claims.get(name) for name in ("state", "nonce", "cv", "ret"))
        state, nonce, verifier, return_to = fields
        created = claims.get("created")
        if not all(isinstance(v, str) and v for v in (state, nonce, verifier, return_to)) or (
            not isinstance(created, int | float) or isinstance(created, bool)
        ):
            raise OidcError("oidc.state_mismatch", "the pending sign-in is invalid")
        return PendingLogin(state, nonce, verifier, float(created), return_to)

    def clear(self, response: Response) -> None:
        response.delete_cookie(
            COOKIE, path=CALLBACK_PATH, secure=self._secure, httponly=True, samesite="lax"
        )
