"""Single-use tokens: the login token of organization choice, password reset links and email
verification links."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from databases import Database

from auth.credential_secrets import hash_secret, new_secret
from auth.tables import one_time_tokens
from infra.db import utcnow

LOGIN = "login"
PASSWORD_RESET = "password_reset"  # noqa: S105 (a purpose name, not a secret)
VERIFY_EMAIL = "verify_email"
PURPOSES = (LOGIN, PASSWORD_RESET, VERIFY_EMAIL)


@dataclass(frozen=True)
class OneTimeGrant:
    user_id: int
    product_id: int
    env: str


async def issue_token(
    db: Database, purpose: str, *, user_id: int, product_id: int, env: str, ttl: int
) -> str:
    token = new_secret()
    now = utcnow()
    await db.execute(
        one_time_tokens.insert().values(
            purpose=purpose,
            token_hash=hash_secret(token),
            user_id=user_id,
            product_id=product_id,
            env=env,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    return token


def _grant(row: object) -> OneTimeGrant:
    m = row._mapping  # type: ignore[attr-defined]
    return OneTimeGrant(m["user_id"], m["product_id"], m["env"])


async def find_token(db: Database, purpose: str, token: str) -> OneTimeGrant | None:
    """What a still-usable token grants, without using it up (to check it before acting)."""
    if not token or len(token) > 200:
        return None
    row = await db.fetch_one(
        one_time_tokens.select().where(
            one_time_tokens.c.token_hash == hash_secret(token),
            one_time_tokens.c.purpose == purpose,
            one_time_tokens.c.used_at.is_(None),
            one_time_tokens.c.expires_at > utcnow(),
        )
    )
    return _grant(row) if row else None


async def consume_token(db: Database, purpose: str, token: str) -> OneTimeGrant | None:
    """Use the token up; None when it is unknown, expired, already used or of another purpose."""
    if not token or len(token) > 200:
        return None
    now = utcnow()
    # One UPDATE both checks and marks: two concurrent uses cannot both succeed.
    row = await db.fetch_one(
        one_time_tokens.update()
        .where(
            one_time_tokens.c.token_hash == hash_secret(token),
            one_time_tokens.c.purpose == purpose,
            one_time_tokens.c.used_at.is_(None),
            one_time_tokens.c.expires_at > now,
        )
        .values(used_at=now)
        .returning(one_time_tokens.c.user_id, one_time_tokens.c.product_id, one_time_tokens.c.env)
    )
    return _grant(row) if row else None


async def discard_user_tokens(db: Database, user_id: int, purpose: str) -> None:
    """Mark every unused token of the user for `purpose` as used (e.g. after a reset)."""
    await db.execute(
        one_time_tokens.update()
        .where(
            one_time_tokens.c.user_id == user_id,
            one_time_tokens.c.purpose == purpose,
            one_time_tokens.c.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
