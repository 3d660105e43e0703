"""ES256 JSON Web Tokens: signing keys, issuing, verifying, and the JWKS document.

Verification trusts nothing in the token before the signature checks out: the algorithm is
pinned to ES256 (so `alg: none` and HS256-with-the-public-key are refused), the key is chosen
by `kid` among our own keys only, and `exp iss sub jti type iat` are required.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from auth.credential_secrets import new_id

logger = logging.getLogger("auth.tokens")

ALGORITHM = "ES256"
ACCESS = "access"
REFRESH = "refresh"
REQUIRED_CLAIMS = ["exp", "iss", "sub", "jti", "type", "iat"]

_PEM_BLOCK = re.compile(
    r"-----BEGIN (?:EC )?PRIVATE KEY-----.+?-----END (?:EC )?PRIVATE KEY-----", re.DOTALL
)


class InvalidToken(Exception):
    """The token is malformed, forged, expired or of the wrong type. Never says which to clients."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private_key: ec.EllipticCurvePrivateKey
    kid: str
    public_jwk: dict[str, str]

    @classmethod
    def from_private_key(cls, private_key: ec.EllipticCurvePrivateKey) -> SigningKey:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 (prime256v1 / secp256r1) key")
        numbers = private_key.public_key().public_numbers()
        coords = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64url(numbers.x.to_bytes(32, "big")),
            "y": _b64url(numbers.y.to_bytes(32, "big")),
        }
        # RFC 7638 thumbprint: stable across restarts and processes, derived from the key alone.
        canonical = json.dumps(coords, separators=(",", ":"), sort_keys=True).encode()
        kid = _b64url(hashlib.sha256(canonical).digest())
        return cls(private_key, kid, {**coords, "kid": kid, "use": "sig", "alg": ALGORITHM})


def generate_private_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_signing_keys(pem_text: str) -> list[SigningKey]:
    """Every PEM private key in `pem_text`, in order; the last one signs."""
    blocks = _PEM_BLOCK.findall(pem_text.replace("\\n", "\n"))
    if not blocks:
        raise ValueError("no PEM private key found")
    keys = []
    for block in blocks:
        private_key = serialization.load_pem_private_key(block.encode("ascii"), password=None)
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ValueError("signing keys must be EC P-256 private keys")
        keys.append(SigningKey.from_private_key(private_key))
    return keys


def load_or_create_dev_key(path: str) -> str:
    """The development key file's PEM, generating it (mode 0600) on first use."""
    file = Path(path)
    if file.exists():
        return file.read_text(encoding="ascii")
    pem = generate_private_key_pem()
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(pem)
    logger.warning(
        "generated a development JWT signing key at %s (git-ignored; production mode needs "
        "HUB_JWT_PRIVATE_KEYS instead)",
        file.resolve(),
    )
    return pem


class TokenSigner:
    """Issues and verifies the hub's JWTs with its configured keys."""

    def __init__(self, keys: list[SigningKey], issuer: str) -> None:
        if not keys:
            raise ValueError("at least one signing key is needed")
        self._keys = {key.kid: key for key in keys}
        self._current = keys[-1]
        self.issuer = issuer

    def issue(self, token_type: str, claims: dict[str, Any], ttl: int) -> tuple[str, dict]:
        """A signed token of `token_type` with `claims`, valid for `ttl` seconds."""
        now = int(time.time())
        payload = {
            **claims,
            "type": token_type,
            "iss": self.issuer,
            "iat": now,
            "exp": now + ttl,
            "jti": claims.get("jti") or new_id(),
        }
        token = jwt.encode(
            payload,
            self._current.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._current.kid},
        )
        return token, payload

    def verify(
        self, token: str, expected_type: str, *, audience: str | None = None
    ) -> dict[str, Any]:
        """The claims of a genuine, unexpired token of `expected_type`, else `InvalidToken`.

        A token issued with an `aud` claim verifies only when the same `audience` is asked for
        (PyJWT refuses an `aud` nobody expects), so a token made for one purpose (the console's
        pending OpenID Connect login) can never pass as an access token, nor the reverse."""
        if not isinstance(token, str) or len(token) > 8192:
            raise InvalidToken("not a token")
        try:
            header = jwt.get_unverified_header(token)
            key = self._keys.get(header.get("kid"))
            if key is None:
                raise InvalidToken("unknown kid")
            claims = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=audience,
                options={"require": [*REQUIRED_CLAIMS, *(["aud"] if audience else [])]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(type(exc).__name__) from None
        if claims.get("type") != expected_type:
            raise InvalidToken("wrong token type")
        return claims

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [key.public_jwk for key in self._keys.values()]}
