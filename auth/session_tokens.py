"""The session strategy: issue a token pair, refresh it, revoke it, authenticate an access token.

A session is a row (`auth/sessions.py`); its tokens are ES256 JWTs (`auth/tokens.py`). This
module is the only one that turns one into the other, so the account flows never see a claim
and the transport never sees a session row. Revoking tells every hub process through
`on_sessions_revoked` (given by the app), so open sockets of a revoked session close at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from databases import Database

from auth import accounts, sessions
from auth.accounts import OrgMembership, Subscription, User
from auth.products import Product, ProductDirectory
from auth.ratelimit import RateLimiter
from auth.tokens import ACCESS, REFRESH, InvalidToken, TokenSigner
from infra.db import utcnow
from infra.errors import HubError, unauthorized
from infra.ids import parse_id
from infra.settings import Settings

logger = logging.getLogger("auth.session_tokens")

SessionsRevoked = Callable[[list[str]], Awaitable[None]]


def invalid_credentials() -> HubError:
    return HubError(401, "auth.invalid_credentials")


def token_ids(claims: dict[str, Any]) -> tuple[int, int]:
    """The (user id, organization id) a verified token names; 401 if they are not ids.

    Only a holder of our signing key could make such a token, but a malformed claim must
    still answer 401, never 500.
    """
    try:
        user_id = parse_id(claims["sub"], error=unauthorized)
        org_id = parse_id(claims["org"], error=unauthorized)
    except KeyError:
        raise unauthorized() from None
    return user_id, org_id


@dataclass(frozen=True)
class AccessContext:
    """Who an access token speaks for, after every check has passed."""

    claims: dict[str, Any]
    user: User
    product: Product
    env: str
    org_id: int


class SessionTokens:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        signer: TokenSigner,
        limiter: RateLimiter,
        products: ProductDirectory,
        on_sessions_revoked: SessionsRevoked | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self._signer = signer
        self._limiter = limiter
        self._products = products
        self._on_sessions_revoked = on_sessions_revoked

    async def revoked(self, sids: list[str]) -> None:
        """Tell every hub process these sessions are gone (their sockets close)."""
        if sids and self._on_sessions_revoked is not None:
            await self._on_sessions_revoked(sids)

    async def usable_subscription(self, org_id: int) -> Subscription:
        subscription = await accounts.get_subscription(self._db, org_id)
        if subscription is None or not subscription.usable:
            raise HubError(403, "subscription.inactive")
        return subscription

    # -- issue --------------------------------------------------------------------------

    async def grant(
        self, user: User, product: Product, env: str, org: OrgMembership, subscription: Subscription
    ) -> dict[str, Any]:
        """A new session and its token pair for `user`, as read before its password was
        checked. Checking a password takes tens of milliseconds, in which the identity may
        have been disowned or reset (which revoke every session there is): the session is
        only created if the password hash is still the one checked, under a row lock that
        makes such a change wait for this session, and so revoke it too."""
        async with self._db.transaction():
            if not await accounts.password_hash_is(self._db, user.id, user.password_hash):
                raise invalid_credentials()
            session = await sessions.create_session(
                self._db,
                user_id=user.id,
                org_id=org.id,
                product_id=product.id,
                env=env,
                ttl=self._settings.refresh_token_ttl,
            )
        return {
            **self._token_pair(user, product, env, org.id, subscription, session),
            "user": user.public(),
            "organization": org.public(),
            "subscription": subscription.public(),
        }

    def _claims(
        self,
        user: User,
        product: Product,
        env: str,
        org_id: int,
        scopes: tuple[str, ...],
        session: sessions.Session,
    ) -> dict[str, Any]:
        return {
            "sub": str(user.id),
            "email_verified": user.email_verified,
            "org": org_id,
            "product": product.slug,
            "env": env,
            "scopes": list(scopes),
            "sid": session.id,
        }

    def _token_pair(
        self,
        user: User,
        product: Product,
        env: str,
        org_id: int,
        subscription: Subscription,
        session: sessions.Session,
    ) -> dict[str, Any]:
        claims = self._claims(user, product, env, org_id, subscription.features, session)
        ttl = self._settings.access_token_ttl
        access, _ = self._signer.issue(ACCESS, claims, ttl)
        # The refresh token carries the session's current jti and dies with the session.
        refresh_ttl = max(1, int((session.expires_at - utcnow()).total_seconds()))
        refresh, _ = self._signer.issue(
            REFRESH, {**claims, "jti": session.refresh_jti}, refresh_ttl
        )
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": ttl,
        }

    async def mint_access_token(self, product: Product, env: str, user_id: int) -> dict[str, Any]:
        """An access token for a user of the product environment (server API: products that
        keep their own login). It gets a session of its own, so it can be revoked."""
        user = await accounts.get_pool_user(self._db, product.identity_pool_id, env, user_id)
        orgs = await accounts.user_organizations(self._db, user_id, product.id, env) if user else []
        if user is None or not orgs:
            raise HubError(404, "user.not_found")
        subscription = await self.usable_subscription(orgs[0].id)
        ttl = self._settings.access_token_ttl
        session = await sessions.create_session(
            self._db, user_id=user_id, org_id=orgs[0].id, product_id=product.id, env=env, ttl=ttl
        )
        claims = self._claims(user, product, env, orgs[0].id, subscription.features, session)
        access, _ = self._signer.issue(ACCESS, claims, ttl)
        return {"access_token": access, "token_type": "Bearer", "expires_in": ttl}

    # -- refresh and revoke -------------------------------------------------------------

    async def refresh_claims(self, refresh_token: str) -> tuple[dict[str, Any], Product]:
        """The verified claims of a refresh token and the product they name; 401 otherwise."""
        try:
            claims = self._signer.verify(refresh_token, REFRESH)
        except InvalidToken:
            raise unauthorized() from None
        return claims, await self._products.of_claims(claims)

    async def refresh(
        self, claims: dict[str, Any], product: Product, *, client_ip: str
    ) -> dict[str, Any]:
        """Rotate the refresh token in `claims` (already verified) into a new token pair."""
        limits = self._settings.rate_limits
        await self._limiter.hit(limits.refresh_ip, "refresh", client_ip)
        sid = str(claims.get("sid", ""))
        await self._limiter.hit(limits.refresh_session, "refresh-session", sid)
        session = await sessions.get_session(self._db, sid)
        if session is None or session.product_id != product.id:
            raise unauthorized()
        user_id, _ = token_ids(claims)
        user = await accounts.get_pool_user(
            self._db, product.identity_pool_id, session.env, user_id
        )
        org = await accounts.user_organization(
            self._db, user_id, session.organization_id, product.id, session.env
        )
        if org is None or user is None:
            await sessions.revoke_session(self._db, sid, "membership_removed")
            await self.revoked([sid])
            raise unauthorized()
        # Checked before rotating, so the refresh token still works once the plan is fixed.
        subscription = await self.usable_subscription(org.id)
        try:
            session = await sessions.rotate_session(
                self._db,
                sid,
                str(claims["jti"]),
                ttl=self._settings.refresh_token_ttl,
                grace=self._settings.refresh_reuse_grace,
            )
        except sessions.RefreshRejected as exc:
            logger.warning("refresh refused for session %s…: %s", sid[:8], exc.reason)
            await self.revoked([sid])
            raise unauthorized() from None
        return self._token_pair(user, product, session.env, org.id, subscription, session)

    async def logout(self, claims: dict[str, Any]) -> None:
        sid = str(claims.get("sid", ""))
        await sessions.revoke_session(self._db, sid, "logout")
        await self.revoked([sid])

    # -- authenticate -------------------------------------------------------------------

    async def access_claims(self, token: str) -> tuple[dict[str, Any], Product]:
        """Verify an access token's signature and type; the product comes from the token."""
        try:
            claims = self._signer.verify(token, ACCESS)
        except InvalidToken:
            raise unauthorized() from None
        return claims, await self._products.of_claims(claims)

    async def access_context(self, claims: dict[str, Any], product: Product) -> AccessContext:
        """The user behind verified access claims: its session live, its identity still
        of the product's pool and environment."""
        user_id, org_id = token_ids(claims)
        env = str(claims.get("env"))
        sid = str(claims.get("sid", ""))
        user = await accounts.get_session_user(
            self._db, product.identity_pool_id, env, user_id, sid
        )
        if user is None:
            raise unauthorized()
        return AccessContext(claims, user, product, env, org_id)
