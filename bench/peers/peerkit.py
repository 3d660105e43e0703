"""What every peer server shares: per-user HMAC tokens, their settings, the publish batch format.

The bench mints one token per user (`mint`) with a secret it generates for the run and hands
to the peer process in `BENCH_PEER_SECRET`; the peer checks it on connect (`verify`). A token is
`<user_id>.<expires unix>.<base64url HMAC-SHA256 of "<user_id>.<expires>">`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any

SECRET_ENV = "BENCH_PEER_SECRET"
REDIS_URL_ENV = "BENCH_REDIS_URL"
REDIS_PREFIX_ENV = "BENCH_REDIS_PREFIX"


def _signature(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def mint(secret: bytes, user_id: int, ttl: int = 3600) -> str:
    """A token for `user_id`, valid for `ttl` seconds."""
    body = f"{user_id}.{int(time.time()) + ttl}"
    return f"{body}.{_signature(secret, body)}"


def verify(secret: bytes, token: str | None) -> int | None:
    """The token's user id, or None when it is malformed, forged or expired."""
    if not token or token.count(".") != 2:
        return None
    user, expires, signature = token.split(".")
    if not hmac.compare_digest(signature, _signature(secret, f"{user}.{expires}")):
        return None
    try:
        if int(expires) < time.time():
            return None
        return int(user)
    except ValueError:
        return None


def settings_from_env() -> tuple[bytes, str, str]:
    """(token secret, Redis URL, Redis key/channel prefix) as the bench passed them."""
    secret = os.environ.get(SECRET_ENV)
    if not secret:
        raise SystemExit(f"{SECRET_ENV} is not set: start the peers through the bench")
    redis_url = os.environ.get(REDIS_URL_ENV, "redis://127.0.0.1:6379/0")
    prefix = os.environ.get(REDIS_PREFIX_ENV, "bench-peer")
    return secret.encode(), redis_url, prefix


def parse_batch(body: bytes) -> list[tuple[int, Any]]:
    """The server-side publish body `{"items": [{"user_id": 1, "payload": {...}}, ...]}`."""
    items = json.loads(body)["items"]
    return [(int(item["user_id"]), item["payload"]) for item in items]
