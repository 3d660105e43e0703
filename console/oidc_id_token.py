"""The provider's signing keys and the ID token check.

Nothing in the token is trusted before its signature verifies: the algorithm must be one the
provider advertises and an asymmetric one (never `none`, never HS* with a key anyone could
read), the key is found by `kid` among the provider's published public keys only (the token's
own `jku`, `x5u` or `jwk` headers are never followed), then `iss`, `aud` (and `azp`), `exp`,
`iat` and `nonce` must be what this sign-in expects.

An unknown `kid` refetches the JWKS (the provider may have rotated its keys), but at most once
per `min_interval` seconds however many such tokens arrive, so forged tokens cannot make the
hub hammer the provider.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import JWKRegistry, Key

from console.oidc_errors import OidcError

logger = logging.getLogger("console.oidc")

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
MAX_TOKEN_LENGTH = 16_384
LEEWAY = 60  # seconds of clock skew allowed on exp and iat


def _bad_token(message: str) -> OidcError:
    return OidcError("oidc.bad_token", message)


class ProviderKeys:
    """The provider's JWKS, fetched on first use and again on an unknown `kid`, bounded."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        *,
        min_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self._min_interval = min_interval
        self._clock = clock
        self._keys: dict[str | None, Key] = {}
        self._last_attempt: float | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how many times the JWKS was asked for (tests, operators)

    def _lookup(self, kid: str | None) -> Key | None:
        if kid is None:
            # No kid: only unambiguous when the provider publishes one key.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _may_refresh(self) -> bool:
        return self._last_attempt is None or (
            self._clock() - self._last_attempt >= self._min_interval
        )

    async def key_for(self, kid: str | None) -> Key:
        key = self._lookup(kid)
        if key is None and self._may_refresh():
            async with self._lock:
                if self._may_refresh():  # a concurrent caller may have just refreshed
                    await self._refresh()
            key = self._lookup(kid)
        if key is None:
            raise _bad_token("the ID token is signed with a key the provider does not publish")
        return key

    async def _refresh(self) -> None:
        self._last_attempt = self._clock()
        self.fetches += 1
        document = await self._fetch()
        keys: dict[str | None, Key] = {}
        entries = document.get("keys")
        for entry in entries if isinstance(entries, list) else []:
            # Only public-key types used for signatures: a symmetric ("oct") key in a JWKS
            # would let anyone who read the document sign tokens.
            if not isinstance(entry, dict) or entry.get("kty") not in _PUBLIC_KEY_TYPES:
                continue
            if entry.get("use", "sig") != "sig":
                continue
            try:
                key = JWKRegistry.import_key(entry)
            except (JoseError, ValueError, TypeError):
                continue
            kid = entry.get("kid")
            keys[kid if isinstance(kid, str) else None] = key
        if not keys:
            logger.warning("OpenID Connect: the provider's JWKS holds no usable signing key")
        self._keys = keys


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or len(parts[0]) > 2048:
        raise _bad_token("the ID token is not a signed JWT")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad_token("the ID token's header is malformed") from None
    if not isinstance(header, dict):
        raise _bad_token("the ID token's header is malformed")
    return header


async def verify_id_token(
    token: object,
    *,
    keys: ProviderKeys,
    algorithms: Collection[str],
    issuer: str,
    client_id: str,
    nonce: str,
    not_before: float,
) -> dict[str, Any]:
    """The claims of a genuine ID token for this client and this sign-in, else `OidcError`."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _bad_token("the provider sent no usable ID token")
    header = _header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in ASYMMETRIC_ALGORITHMS:
        raise _bad_token("the ID token's algorithm is not accepted")
    if "crit" in header:
        raise _bad_token("the ID token asks for extensions the hub does not support")
    kid = header.get("kid")
    key = await keys.key_for(kid if isinstance(kid, str) else None)
    if key.get("alg") not in (None, alg):
        raise _bad_token("the ID token's algorithm does not match its key")
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError):
        raise _bad_token("the ID token's signature does not verify") from None

    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise _bad_token("the ID token has expired") from None
    except (InvalidClaimError, MissingClaimError) as exc:
        raise _bad_token(f"the ID token's {_claim_names(exc)} is wrong or missing") from None
    except JoseError:
        raise _bad_token("the ID token's claims are invalid") from None

    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise _bad_token("the ID token's azp is wrong or missing")
    presented = claims.get("nonce")
    if not isinstance(presented, str) or not hmac.compare_digest(
        presented.encode(), nonce.encode()
    ):
        raise _bad_token("the ID token's nonce is wrong or missing")
    if claims["iat"] < not_before - LEEWAY:
        raise _bad_token("the ID token was issued before this sign-in began")
    return claims


def _claim_names(exc: JoseError) -> str:
    names = getattr(exc, "claim", None) or str(exc.description or "")
    known = [name for name in ("iss", "sub", "aud", "exp", "iat", "nonce") if name in names]
    return ", ".join(known) or "claims"
