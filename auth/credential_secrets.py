"""Random credentials and how they are stored: shown once, kept only as a SHA-256 digest."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """`prefix` + `nbytes` random bytes as URL-safe base64 (43 characters for 32 bytes)."""
    return prefix + secrets.token_urlsafe(nbytes)


def hash_secret(value: str) -> str:
    """The stored form of a credential: lookups go by this digest, never by the plaintext."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_id() -> str:
    """An opaque identifier (session ids, JWT ids): 128 random bits, hex."""
    return secrets.token_hex(16)
