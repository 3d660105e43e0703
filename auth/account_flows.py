"""The account flows: register, log in, choose an organization, server upserts, me.

`AccountFlows` decides who gets a session; the session itself is `SessionTokens`' job and
mailed links are `MailedLinks`'. Every failure is a `HubError` with a stable code, raised
before anything is written. One rule runs through the flows: an identity nobody proved the
email of may be taken from whoever chose its password (see `_disown`).
"""

from __future__ import annotations

import logging
from typing import Any, NoReturn

from databases import Database

from auth import accounts, external_users, one_time, org_credentials, sessions
from auth.accounts import OrgMembership, User
from auth.mailed_links import MailedLinks
from auth.passwords import PasswordHasher
from auth.products import Product, default_plan_id
from auth.ratelimit import RateLimiter
from auth.session_tokens import AccessContext, SessionTokens, invalid_credentials
from infra.db import is_unique_violation
from infra.errors import HubError
from infra.settings import Settings

logger = logging.getLogger("auth.account_flows")


class AccountFlows:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        tokens: SessionTokens,
        links: MailedLinks,
    ) -> None:
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._limiter = limiter
        self._tokens = tokens
        self._links = links
        self._limits = settings.rate_limits

    # -- identities ---------------------------------------------------------------------

    async def _user_by_email(self, product: Product, env: str, email: str) -> User | None:
        return await accounts.get_user_by_email(self._db, product.identity_pool_id, env, email)

    async def _hit_account(
        self, limit: str, name: str, product: Product, env: str, email: str
    ) -> None:
        await self._limiter.hit_account(limit, name, product.identity_pool_id, env, email)

    async def _hit_public(self, product: Product, env: str) -> None:
        # After the narrow limits: see `auth/ratelimit.py`.
        await self._limiter.hit_public(self._limits.public_product, product.id, env)

    async def _disown(self, user: User, why: str) -> None:
        """Take an unverified identity away from whoever chose its password: that password,
        every session, workspace token, OAuth application, extension and pending link stop
        working. The identity and its data stay; the owner of the mailbox gets in through a
        password reset, which proves the email."""
        db = self._db
        async with db.transaction():
            await accounts.update_user(db, user.id, password_hash=None)
            for purpose in one_time.PURPOSES:
                await one_time.discard_user_tokens(db, user.id, purpose)
            await org_credentials.revoke_owned_by(db, user.id)
            revoked = await sessions.revoke_user_sessions(db, user.id, "identity_claimed")
        logger.info(
            "unverified user %s disowned (%s); %d sessions revoked", user.id, why, len(revoked)
        )
        await self._tokens.revoked(revoked)

    async def _claimable(self, user: User, product: Product, env: str) -> bool:
        """Whether another product's registration meeting `user` with another password
        disowns it: nobody proved the email and no product vouched for it (a vouched identity
        has no password until a reset proves the email). On the identity's own products the
        seed's rule applies: joining another org needs the password."""
        return (
            not user.email_verified
            and user.password_hash is not None
            and not await accounts.user_organizations(self._db, user.id, product.id, env)
        )

    # -- register -----------------------------------------------------------------------

    async def register(
        self,
        product: Product,
        env: str,
        *,
        email: str,
        password: str,
        name: str,
        organization_name: str,
        locale: str | None,
        client_ip: str,
    ) -> dict[str, Any]:
        await self._limiter.hit(self._limits.register_ip, "register", client_ip)
        await self._hit_account(self._limits.login_account, "account", product, env, email)
        await self._hit_public(product, env)
        user = await self._user_by_email(product, env, email)
        created = False
        if user is None:
            password_hash = await self._hasher.hash(password)
            user = await self._create_identity(product, env, email, password_hash, name, locale)
            created = user.password_hash == password_hash
        if not created and not await self._hasher.verify(password, user.password_hash):
            # An identity of the pool has this email already (or a concurrent registration
            # made it a moment ago).
            await self._refuse_registration(user, product, env, email)
        plan_id = await default_plan_id(self._db, product.id)
        async with self._db.transaction():
            org_id = await accounts.create_organization(
                self._db,
                product_id=product.id,
                env=env,
                name=organization_name,
                owner_id=user.id,
                plan_id=plan_id,
            )
        org = OrgMembership(org_id, organization_name, "owner")
        subscription = await self._tokens.usable_subscription(org_id)
        if product.require_verified_email and not user.email_verified:
            # As at login: no session until the mailbox owner proves the address (the
            # verification mail goes out after this answer).
            return {
                "user": user.public(),
                "organization": org.public(),
                "email_verification_required": True,
            }
        return await self._tokens.grant(user, product, env, org, subscription)

    async def _create_identity(
        self,
        product: Product,
        env: str,
        email: str,
        password_hash: str,
        name: str,
        locale: str | None,
    ) -> User:
        """A new identity in the product's pool, or the one a concurrent registration of the
        same email created first (the unique email per pool and environment decides)."""
        try:
            await accounts.create_user(
                self._db,
                pool_id=product.identity_pool_id,
                env=env,
                email=email,
                password_hash=password_hash,
                name=name,
                locale=locale,
            )
        except Exception as exc:
            if not is_unique_violation(exc):
                raise
        user = await self._user_by_email(product, env, email)
        assert user is not None
        return user

    async def _refuse_registration(
        self, user: User, product: Product, env: str, email: str
    ) -> NoReturn:
        """Answer a registration whose password does not open the identity `user`."""
        if not await self._claimable(user, product, env):
            # Same identity within the pool: joining another org needs its password.
            raise invalid_credentials()
        # Another product of the pool meets an identity nobody proved, with another password.
        # Neither typist has proven the address, so neither gets the identity: whoever typed
        # it first loses password and sessions, and the mailbox owner is sent a link to set a
        # password (which proves the email), keeping its data.
        await self._hit_account(self._limits.forgot_account, "forgot-account", product, env, email)
        await self._disown(user, "another product's registration")
        await self._links.send_password_reset(product, env, email)
        raise HubError(409, "auth.email_unconfirmed")

    # -- log in -------------------------------------------------------------------------

    async def _check_password(
        self, product: Product, env: str, email: str, password: str, client_ip: str
    ) -> User:
        await self._limiter.hit(self._limits.login_ip, "login", client_ip)
        await self._hit_account(self._limits.login_account, "account", product, env, email)
        await self._hit_public(product, env)
        user = await self._user_by_email(product, env, email)
        if not await self._hasher.verify(password, user.password_hash if user else None):
            raise invalid_credentials()
        assert user is not None
        return user

    async def login(
        self, product: Product, env: str, *, email: str, password: str, client_ip: str
    ) -> dict[str, Any]:
        user = await self._check_password(product, env, email, password, client_ip)
        orgs = await accounts.user_organizations(self._db, user.id, product.id, env)
        if not orgs:
            # A user of another product: do not reveal that the email exists elsewhere.
            raise invalid_credentials()
        if product.require_verified_email and not user.email_verified:
            raise HubError(403, "auth.email_unverified")
        if len(orgs) == 1:
            subscription = await self._tokens.usable_subscription(orgs[0].id)
            return await self._tokens.grant(user, product, env, orgs[0], subscription)
        ttl = self._settings.login_token_ttl
        login_token = await one_time.issue_token(
            self._db, one_time.LOGIN, user_id=user.id, product_id=product.id, env=env, ttl=ttl
        )
        return {
            "select_organization": True,
            "organizations": [org.public() for org in orgs],
            "login_token": login_token,
            "expires_in": ttl,
        }

    async def select_organization(
        self, product: Product, env: str, *, login_token: str, organization_id: int
    ) -> dict[str, Any]:
        await self._hit_public(product, env)  # no narrower limit: the login token is one
        db = self._db
        grant = await one_time.find_token(db, one_time.LOGIN, login_token)
        if grant is None or grant.product_id != product.id or grant.env != env:
            raise HubError(401, "auth.invalid_login_token")
        org = await accounts.user_organization(db, grant.user_id, organization_id, product.id, env)
        if org is None:
            # The token stays usable: the user may pick one of the offered organizations.
            raise HubError(404, "organization.not_found")
        subscription = await self._tokens.usable_subscription(org.id)
        if await one_time.consume_token(db, one_time.LOGIN, login_token) is None:
            raise HubError(401, "auth.invalid_login_token")
        user = await accounts.get_pool_user(db, product.identity_pool_id, env, grant.user_id)
        if user is None or user.password_hash is None:
            # Gone, or disowned after this login token was issued.
            raise HubError(401, "auth.invalid_login_token")
        return await self._tokens.grant(user, product, env, org, subscription)

    # -- users a product's backend manages ----------------------------------------------

    async def upsert_user(
        self,
        product: Product,
        env: str,
        *,
        external_id: str,
        email: str | None,
        name: str | None,
        locale: str | None,
    ) -> tuple[dict[str, Any], bool]:
        db = self._db
        org_id = await external_users.default_organization(
            db,
            product_id=product.id,
            env=env,
            name=product.name,
            plan_id=await default_plan_id(db, product.id),
        )
        linked = await external_users.external_user_id(db, product.id, env, external_id)
        # Only a new link can hand an identity over (a linked user keeps its identity).
        existing = await self._user_by_email(product, env, email) if email and not linked else None
        if (
            existing is not None
            and not existing.email_verified
            and existing.password_hash is not None
        ):
            # The product vouches for this email, but whoever chose the password (on any
            # product of the pool, this one included) never proved it: they must not see what
            # this product sends it. (An identity a backend made has no password to take.)
            await self._disown(existing, "vouched for by a product")
        user, created = await external_users.upsert_external_user(
            db,
            pool_id=product.identity_pool_id,
            product_id=product.id,
            env=env,
            external_id=external_id,
            email=email,
            name=name,
            locale=locale,
            org_id=org_id,
        )
        return {**user.public(), "external_id": external_id}, created

    # -- me -----------------------------------------------------------------------------

    async def me(self, ctx: AccessContext) -> dict[str, Any]:
        org = await accounts.user_organization(
            self._db, ctx.user.id, ctx.org_id, ctx.product.id, ctx.env
        )
        subscription = await accounts.get_subscription(self._db, ctx.org_id)
        return {
            "user": ctx.user.public(),
            "organization": org.public() if org else None,
            "subscription": subscription.public() if subscription else None,
        }

    async def update_me(
        self, ctx: AccessContext, *, name: str | None, locale: str | None
    ) -> dict[str, Any]:
        changes = {k: v for k, v in (("name", name), ("locale", locale)) if v is not None}
        if changes:
            await accounts.update_user(self._db, ctx.user.id, **changes)
        user = await accounts.get_user(self._db, ctx.user.id)
        assert user is not None
        return await self.me(AccessContext(ctx.claims, user, ctx.product, ctx.env, ctx.org_id))
