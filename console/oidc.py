"""OpenID Connect sign-in for the operator console, with any provider configured by issuer URL,
client id and secret (Google, Okta, Keycloak, WorkOS and the like): the authorization code flow
with PKCE (S256), `state` and `nonce`, and the ID token verified against the provider's JWKS.

`OidcClient.begin` makes the provider's authorization URL and the `PendingLogin` the browser
carries back (console/oidc_pending.py signs it into a cookie); `finish` checks the callback
against it, exchanges the code through Authlib's httpx client and returns the verified
identity. Every refusal is an `OidcError`; nothing secret (codes, tokens, the client secret)
is ever logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from console.oidc_errors import OidcError
from console.oidc_http import AsyncOAuth2Client, OAuthError, bounded_client_kwargs, fetch_json, http
from console.oidc_id_token import ASYMMETRIC_ALGORITHMS, ProviderKeys, verify_id_token
from infra.console_settings import oidc_url_problem

__all__ = ["OidcClient", "OidcConfig", "OidcError", "PendingLogin", "VerifiedIdentity"]

logger = logging.getLogger("console.oidc")

SCOPE = "openid email profile"
DISCOVERY_TTL = 3600.0  # seconds a discovery document is trusted before it is fetched again
DISCOVERY_RETRY = 5.0  # seconds after a failed discovery fetch before the next one


def _check_url(url: str, what: str) -> None:
    problem = oidc_url_problem(url, what)
    if problem:
        raise ValueError(problem)


@dataclass(frozen=True)
class OidcConfig:
    """One provider: the lead builds it from HUB_CONSOLE_OIDC_* and HUB_PUBLIC_URL."""

    issuer: str
    client_id: str
    client_secret: str
    redirect_uri: str
    label: str = "single sign-on"

    def __post_init__(self) -> None:
        _check_url(self.issuer, "the OpenID Connect issuer")
        _check_url(self.redirect_uri, "the OpenID Connect redirect URI")
        if not self.client_id or not self.client_secret:
            raise ValueError("OpenID Connect needs a client id and a client secret")

    def __repr__(self) -> str:  # never the secret, in a traceback or a log
        return f"OidcConfig(issuer={self.issuer!r}, client_id={self.client_id!r}, ...)"


@dataclass(frozen=True)
class PendingLogin:
    """What one browser's sign-in must come back with; lives in a signed cookie (10 minutes)."""

    state: str
    nonce: str
    code_verifier: str
    created_at: float
    return_to: str


@dataclass(frozen=True)
class VerifiedIdentity:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


@dataclass(frozen=True)
class _Provider:
    """The parts of the discovery document the flow uses, checked."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_method: str
    algorithms: frozenset[str]


def _parse_discovery(document: dict[str, Any], issuer: str) -> _Provider:
    def refuse(reason: str) -> OidcError:
        logger.warning("OpenID Connect: the discovery document is refused: %s", reason)
        return OidcError("oidc.unavailable", "the identity provider's configuration is unusable")

    if document.get("issuer") != issuer:
        raise refuse("its issuer is not exactly HUB_CONSOLE_OIDC_ISSUER")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        try:
            if not isinstance(value, str):
                raise ValueError(name)
            _check_url(value, name)
        except ValueError:
            raise refuse(f"{name} is missing or not https") from None
        endpoints[name] = value
    methods = document.get("token_endpoint_auth_methods_supported", ["client_secret_basic"])
    method = next(
        (m for m in ("client_secret_basic", "client_secret_post") if m in (methods or [])), None
    )
    if method is None:
        raise refuse("it supports neither client_secret_basic nor client_secret_post")
    challenges = document.get("code_challenge_methods_supported")
    if isinstance(challenges, list) and "S256" not in challenges:
        raise refuse("it does not support PKCE with S256")
    advertised = document.get("id_token_signing_alg_values_supported", ["RS256"])
    algorithms = frozenset(a for a in advertised or [] if a in ASYMMETRIC_ALGORITHMS)
    if not algorithms:
        raise refuse("it signs ID tokens with no asymmetric algorithm")
    return _Provider(
        endpoints["authorization_endpoint"],
        endpoints["token_endpoint"],
        endpoints["jwks_uri"],
        method,
        algorithms,
    )


class OidcClient:
    """The hub's side of the flow with one provider; one per process, shared by requests."""

    def __init__(
        self,
        config: OidcConfig,
        *,
        timeout: float = 10.0,
        max_bytes: int = 256 * 1024,
        jwks_min_interval: float = 60.0,
    ) -> None:
        self.config = config
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._http = http.AsyncClient(**bounded_client_kwargs(timeout, max_bytes))
        self._provider: _Provider | None = None
        self._provider_at = 0.0
        self._failed_at: float | None = None
        self._discovery_lock = asyncio.Lock()
        self.keys = ProviderKeys(self._fetch_jwks, min_interval=jwks_min_interval)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def provider(self) -> _Provider:
        """The checked discovery document, cached; fetched by one caller at a time, and a
        failed fetch is not retried for a few seconds (a flood of sign-ins while the provider
        is down must not become a flood of requests to it)."""
        provider = self._fresh_provider()
        if provider is not None:
            return provider
        async with self._discovery_lock:
            provider = self._fresh_provider()
            if provider is not None:
                return provider
            now = time.monotonic()
            if self._failed_at is not None and now - self._failed_at < DISCOVERY_RETRY:
                raise _unreachable()
            url = self.config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                document = await fetch_json(self._http, url, "discovery document")
                provider = _parse_discovery(document, self.config.issuer)
            except OidcError:
                self._failed_at = now
                raise
            self._provider, self._provider_at, self._failed_at = provider, now, None
            return provider

    def _fresh_provider(self) -> _Provider | None:
        if self._provider is not None and time.monotonic() - self._provider_at < DISCOVERY_TTL:
            return self._provider
        return None

    async def _fetch_jwks(self) -> dict[str, Any]:
        return await fetch_json(self._http, (await self.provider()).jwks_uri, "JWKS")

    async def begin(self, return_to: str = "/console/") -> tuple[str, PendingLogin]:
        """The provider's authorization URL and the pending login to keep in the browser."""
        provider = await self.provider()
        pending = PendingLogin(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),  # 86 characters: RFC 7636 allows 43..128
            created_at=time.time(),
            return_to=return_to,
        )
        url = add_params_to_uri(
            provider.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", self.config.client_id),
                ("redirect_uri", self.config.redirect_uri),
                ("scope", SCOPE),
                ("state", pending.state),
                ("nonce", pending.nonce),
                ("code_challenge", create_s256_code_challenge(pending.code_verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return url, pending

    async def finish(self, pending: PendingLogin, params: Mapping[str, str]) -> VerifiedIdentity:
        """The identity the provider vouches for in this callback, else `OidcError`."""
        state = params.get("state", "")
        if not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise OidcError("oidc.state_mismatch", "the sign-in answer is not for this browser")
        if "error" in params:
            error = params["error"]
            shown = error if error.isascii() and error.replace("_", "").isalpha() else "error"
            raise OidcError("oidc.provider_error", f"the identity provider refused ({shown[:64]})")
        if "iss" in params and params["iss"] != self.config.issuer:  # RFC 9207: a mix-up
            raise OidcError("oidc.issuer_mismatch", "the sign-in answer names another issuer")
        code = params.get("code", "")
        if not code:
            raise OidcError("oidc.bad_request", "the sign-in answer has no code")
        provider = await self.provider()
        id_token = await self._exchange(provider, code, pending.code_verifier)
        claims = await verify_id_token(
            id_token,
            keys=self.keys,
            algorithms=provider.algorithms,
            issuer=self.config.issuer,
            client_id=self.config.client_id,
            nonce=pending.nonce,
            not_before=pending.created_at,
        )
        return _identity(self.config.issuer, claims)

    async def _exchange(self, provider: _Provider, code: str, code_verifier: str) -> object:
        client = AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret,
            token_endpoint_auth_method=provider.token_auth_method,
            redirect_uri=self.config.redirect_uri,
            **bounded_client_kwargs(self._timeout, self._max_bytes),
        )
        try:
            async with client:
                token = await client.fetch_token(
                    provider.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=code_verifier,
                )
        except OAuthError as exc:
            logger.info("OpenID Connect: the provider refused the code (%s)", exc.error)
            raise OidcError("oidc.code_refused", "the identity provider refused the code") from None
        except http.HTTPStatusError as exc:
            status = exc.response.status_code
            logger.warning("OpenID Connect: the token endpoint answered HTTP %s", status)
            if status < 500:
                raise OidcError(
                    "oidc.code_refused", "the identity provider refused the code"
                ) from None
            raise OidcError("oidc.unavailable", "the identity provider failed") from None
        except (http.HTTPError, ValueError) as exc:
            logger.warning("OpenID Connect: the token exchange failed: %s", type(exc).__name__)
            raise _unreachable() from None
        return token.get("id_token")


def _unreachable() -> OidcError:
    return OidcError("oidc.unavailable", "the identity provider could not be reached")


def _text(value: object, limit: int) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _identity(issuer: str, claims: dict[str, Any]) -> VerifiedIdentity:
    subject = _text(claims.get("sub"), 255)
    if subject is None:
        raise OidcError("oidc.bad_token", "the ID token's subject is unusable")
    verified = claims.get("email_verified")
    return VerifiedIdentity(
        issuer=issuer,
        subject=subject,
        email=_text(claims.get("email"), 320),
        # Some providers (Cognito) send the string "true".
        email_verified=verified is True or verified == "true",
        name=_text(claims.get("name"), 200),
    )
