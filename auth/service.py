"""The headless auth flows: register, login, organization choice, refresh, logout, reset, me.

`Auth` holds what the flows need (database, token signer, password hasher, mailer, rate
limiter) and speaks in domain terms; `auth/routes.py` turns HTTP into calls on it. Every
failure is a `HubError` with a stable code, raised before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from databases import Database

from auth import accounts, one_time, org_credentials, sessions
from auth.accounts import OrgMembership, Subscription, User
from auth.credential_secrets import hash_secret
from auth.mail import PASSWORD_RESET, VERIFY_EMAIL, Mailer, branded_mail
from auth.passwords import PasswordHasher
from auth.products import (
    Product,
    default_plan_id,
    get_product,
    get_product_by_slug,
    normalize_url_template,
)
from auth.ratelimit import RateLimiter
from auth.tokens import ACCESS, REFRESH, InvalidToken, TokenSigner
from infra.db import is_unique_violation, utcnow
from infra.errors import HubError, unauthorized
from infra.settings import Settings

logger = logging.getLogger("auth.service")

# The error of a mailed link that is unknown, expired or used, by purpose.
INVALID_LINK = {
    one_time.PASSWORD_RESET: "auth.invalid_reset_token",
    one_time.VERIFY_EMAIL: "auth.invalid_verification_token",
}

PASSWORD_MIN = 8
PASSWORD_MAX = 128


def invalid_credentials() -> HubError:
    return HubError(401, "auth.invalid_credentials")


def token_ids(claims: dict[str, Any]) -> tuple[int, int]:
    """The (user id, organization id) a verified token names; 401 if they are not ids.

    Only a holder of our signing key could make such a token, but a malformed claim must
    still answer 401, never 500.
    """
    try:
        user_id, org_id = int(claims["sub"]), int(claims["org"])
    except (KeyError, TypeError, ValueError):
        raise unauthorized() from None
    if not (0 < user_id < 2**63 and 0 < org_id < 2**63):
        raise unauthorized()
    return user_id, org_id


@dataclass(frozen=True)
class AccessContext:
    """Who an access token speaks for, after every check has passed."""

    claims: dict[str, Any]
    user: User
    product: Product
    env: str
    org_id: int


class Auth:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        signer: TokenSigner,
        hasher: PasswordHasher,
        mailer: Mailer,
        limiter: RateLimiter,
    ) -> None:
        self.db = db
        self.settings = settings
        self.signer = signer
        self.hasher = hasher
        self.mailer = mailer
        self.limiter = limiter
        self.limits = settings.rate_limits
        # Set by the app: tells every hub process to drop these sessions' sockets at once.
        self.on_sessions_revoked: Callable[[list[str]], Awaitable[None]] | None = None

    async def _revoked(self, sids: list[str]) -> None:
        if sids and self.on_sessions_revoked is not None:
            await self.on_sessions_revoked(sids)

    # -- identities -----------------------------------------------------------------------

    async def _user_by_email(self, product: Product, env: str, email: str) -> User | None:
        return await accounts.get_user_by_email(self.db, product.identity_pool_id, env, email)

    async def _user_of(self, product: Product, env: str, user_id: int) -> User | None:
        """The user with this id if it is an identity of the product's pool and `env`."""
        user = await accounts.get_user(self.db, user_id)
        if user is None or not user.belongs_to(product.identity_pool_id, env):
            return None
        return user

    async def _present_on(self, user: User, product: Product, env: str) -> bool:
        return bool(await accounts.user_organizations(self.db, user.id, product.id, env))

    async def _disown(self, user: User, why: str) -> None:
        """Take an unverified identity away from whoever chose its password: that password,
        every session, workspace token, OAuth application and pending link stop working. The
        identity and its data stay; the owner of the mailbox gets in through a password
        reset, which proves the email."""
        async with self.db.transaction():
            await accounts.update_user(self.db, user.id, password_hash=None)
            for purpose in one_time.PURPOSES:
                await one_time.discard_user_tokens(self.db, user.id, purpose)
            await org_credentials.revoke_owned_by(self.db, user.id)
            revoked = await sessions.revoke_user_sessions(self.db, user.id, "identity_claimed")
        logger.info(
            "unverified user %s disowned (%s); %d sessions revoked", user.id, why, len(revoked)
        )
        await self._revoked(revoked)

    async def _claimable(self, user: User, product: Product, env: str) -> bool:
        """Whether another product's registration meeting `user` with another password
        disowns it: nobody proved the email and no product vouched for it (a vouched identity
        has no password until a reset proves the email). On the identity's own products the
        seed's rule applies: joining another org needs the password."""
        return (
            not user.email_verified
            and user.password_hash is not None
            and not await self._present_on(user, product, env)
        )

    async def _hit_account(
        self, limit: str, name: str, product: Product, env: str, email: str
    ) -> None:
        """Count an attempt on an email address within the product's pool and environment
        (the same address elsewhere is another identity with its own budget)."""
        await self.limiter.hit(limit, name, str(product.identity_pool_id), env, hash_secret(email))

    # -- products -------------------------------------------------------------------------

    async def product_for_slug(self, slug: str | None) -> Product:
        if not slug:
            raise HubError(400, "product.required")
        product = await get_product_by_slug(self.db, slug.strip().lower())
        if product is None:
            raise HubError(404, "product.not_found")
        return product

    # -- tokens ---------------------------------------------------------------------------

    async def _grant(
        self, user: User, product: Product, env: str, org: OrgMembership, subscription: Subscription
    ) -> dict[str, Any]:
        """A new session and its token pair for `user`, as read before its password was
        checked. Checking a password takes tens of milliseconds, in which the identity may
        have been disowned or reset (which revoke every session there is): the session is
        only created if the password hash is still the one checked, under a row lock that
        makes such a change wait for this session, and so revoke it too."""
        async with self.db.transaction():
            if not await accounts.password_hash_is(self.db, user.id, user.password_hash):
                raise invalid_credentials()
            session = await sessions.create_session(
                self.db,
                user_id=user.id,
                org_id=org.id,
                product_id=product.id,
                env=env,
                ttl=self.settings.refresh_token_ttl,
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
        access, _ = self.signer.issue(ACCESS, claims, self.settings.access_token_ttl)
        # The refresh token carries the session's current jti and dies with the session.
        refresh_ttl = max(1, int((session.expires_at - utcnow()).total_seconds()))
        refresh, _ = self.signer.issue(REFRESH, {**claims, "jti": session.refresh_jti}, refresh_ttl)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
        }

    async def _usable_subscription(self, org_id: int) -> Subscription:
        subscription = await accounts.get_subscription(self.db, org_id)
        if subscription is None or not subscription.usable:
            raise HubError(403, "subscription.inactive")
        return subscription

    # -- flows ----------------------------------------------------------------------------

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
        await self.limiter.hit(self.limits.register_ip, "register", client_ip)
        await self._hit_account(self.limits.login_account, "account", product, env, email)
        user = await self._user_by_email(product, env, email)
        created = False
        if user is None:
            password_hash = await self.hasher.hash(password)
            user = await self._create_identity(product, env, email, password_hash, name, locale)
            created = user.password_hash == password_hash
        if not created and not await self.hasher.verify(password, user.password_hash):
            # An identity of the pool has this email already (or a concurrent registration
            # made it a moment ago).
            await self._refuse_registration(user, product, env, email)
        plan_id = await default_plan_id(self.db, product.id)
        async with self.db.transaction():
            org_id = await accounts.create_organization(
                self.db,
                product_id=product.id,
                env=env,
                name=organization_name,
                owner_id=user.id,
                plan_id=plan_id,
            )
        org = OrgMembership(org_id, organization_name, "owner")
        subscription = await self._usable_subscription(org_id)
        if product.require_verified_email and not user.email_verified:
            # As at login: no session until the mailbox owner proves the address (the
            # verification mail goes out after this answer).
            return {
                "user": user.public(),
                "organization": org.public(),
                "email_verification_required": True,
            }
        return await self._grant(user, product, env, org, subscription)

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
                self.db,
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
        await self._hit_account(self.limits.forgot_account, "forgot-account", product, env, email)
        await self._disown(user, "another product's registration")
        await self.send_password_reset(product, env, email)
        raise HubError(409, "auth.email_unconfirmed")

    async def _check_password(
        self, product: Product, env: str, email: str, password: str, client_ip: str
    ) -> User:
        await self.limiter.hit(self.limits.login_ip, "login", client_ip)
        await self._hit_account(self.limits.login_account, "account", product, env, email)
        user = await self._user_by_email(product, env, email)
        if not await self.hasher.verify(password, user.password_hash if user else None):
            raise invalid_credentials()
        assert user is not None
        return user

    async def login(
        self, product: Product, env: str, *, email: str, password: str, client_ip: str
    ) -> dict[str, Any]:
        user = await self._check_password(product, env, email, password, client_ip)
        orgs = await accounts.user_organizations(self.db, user.id, product.id, env)
        if not orgs:
            # A user of another product: do not reveal that the email exists elsewhere.
            raise invalid_credentials()
        if product.require_verified_email and not user.email_verified:
            raise HubError(403, "auth.email_unverified")
        if len(orgs) == 1:
            subscription = await self._usable_subscription(orgs[0].id)
            return await self._grant(user, product, env, orgs[0], subscription)
        login_token = await one_time.issue_token(
            self.db,
            one_time.LOGIN,
            user_id=user.id,
            product_id=product.id,
            env=env,
            ttl=self.settings.login_token_ttl,
        )
        return {
            "select_organization": True,
            "organizations": [org.public() for org in orgs],
            "login_token": login_token,
            "expires_in": self.settings.login_token_ttl,
        }

    async def select_organization(
        self, product: Product, env: str, *, login_token: str, organization_id: int
    ) -> dict[str, Any]:
        grant = await one_time.find_token(self.db, one_time.LOGIN, login_token)
        if grant is None or grant.product_id != product.id or grant.env != env:
            raise HubError(401, "auth.invalid_login_token")
        org = await accounts.user_organization(
            self.db, grant.user_id, organization_id, product.id, env
        )
        if org is None:
            # The token stays usable: the user may pick one of the offered organizations.
            raise HubError(404, "organization.not_found")
        subscription = await self._usable_subscription(org.id)
        if await one_time.consume_token(self.db, one_time.LOGIN, login_token) is None:
            raise HubError(401, "auth.invalid_login_token")
        user = await self._user_of(product, env, grant.user_id)
        if user is None or user.password_hash is None:
            # Gone, or disowned after this login token was issued.
            raise HubError(401, "auth.invalid_login_token")
        return await self._grant(user, product, env, org, subscription)

    def refresh_claims(self, refresh_token: str) -> dict[str, Any]:
        try:
            return self.signer.verify(refresh_token, REFRESH)
        except InvalidToken:
            raise unauthorized() from None

    async def product_by_id(self, product_id: int) -> Product:
        product = await get_product(self.db, product_id)
        if product is None:
            raise unauthorized()
        return product

    async def product_of(self, claims: dict[str, Any]) -> Product:
        product = await get_product_by_slug(self.db, str(claims.get("product", "")))
        if product is None:
            raise unauthorized()
        return product

    async def refresh_session(
        self, claims: dict[str, Any], product: Product, *, client_ip: str
    ) -> dict[str, Any]:
        """Rotate the refresh token in `claims` (already verified) into a new token pair."""
        await self.limiter.hit(self.limits.refresh_ip, "refresh", client_ip)
        sid = str(claims.get("sid", ""))
        await self.limiter.hit(self.limits.refresh_session, "refresh-session", sid)
        session = await sessions.get_session(self.db, sid)
        if session is None or session.product_id != product.id:
            raise unauthorized()
        user_id, _ = token_ids(claims)
        user = await self._user_of(product, session.env, user_id)
        org = await accounts.user_organization(
            self.db, user_id, session.organization_id, product.id, session.env
        )
        if org is None or user is None:
            await sessions.revoke_session(self.db, sid, "membership_removed")
            await self._revoked([sid])
            raise unauthorized()
        # Checked before rotating, so the refresh token still works once the plan is fixed.
        subscription = await self._usable_subscription(org.id)
        try:
            session = await sessions.rotate_session(
                self.db,
                sid,
                str(claims["jti"]),
                ttl=self.settings.refresh_token_ttl,
                grace=self.settings.refresh_reuse_grace,
            )
        except sessions.RefreshRejected as exc:
            logger.warning("refresh refused for session %s…: %s", sid[:8], exc.reason)
            await self._revoked([sid])
            raise unauthorized() from None
        return self._token_pair(user, product, session.env, org.id, subscription, session)

    async def mint_access_token(self, product: Product, env: str, user_id: int) -> dict[str, Any]:
        """An access token for a user of the product environment (server API: products that
        keep their own login). It gets a session of its own, so it can be revoked."""
        user = await self._user_of(product, env, user_id)
        orgs = await accounts.user_organizations(self.db, user_id, product.id, env) if user else []
        if user is None or not orgs:
            raise HubError(404, "user.not_found")
        subscription = await self._usable_subscription(orgs[0].id)
        session = await sessions.create_session(
            self.db,
            user_id=user_id,
            org_id=orgs[0].id,
            product_id=product.id,
            env=env,
            ttl=self.settings.access_token_ttl,
        )
        claims = self._claims(user, product, env, orgs[0].id, subscription.features, session)
        access, _ = self.signer.issue(ACCESS, claims, self.settings.access_token_ttl)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.settings.access_token_ttl,
        }

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
        org_id = await accounts.default_organization(
            self.db,
            product_id=product.id,
            env=env,
            name=product.name,
            plan_id=await default_plan_id(self.db, product.id),
        )
        linked = await accounts.external_user_id(self.db, product.id, env, external_id)
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
        user, created = await accounts.upsert_external_user(
            self.db,
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

    async def logout(self, claims: dict[str, Any]) -> None:
        sid = str(claims.get("sid", ""))
        await sessions.revoke_session(self.db, sid, "logout")
        await self._revoked([sid])

    async def authenticate_access(self, token: str) -> tuple[dict[str, Any], Product]:
        """Verify an access token and its session; the product comes from the token."""
        try:
            claims = self.signer.verify(token, ACCESS)
        except InvalidToken:
            raise unauthorized() from None
        product = await self.product_of(claims)
        return claims, product

    async def access_context(self, claims: dict[str, Any], product: Product) -> AccessContext:
        if not await sessions.is_session_active(self.db, str(claims.get("sid", ""))):
            raise unauthorized()
        user_id, org_id = token_ids(claims)
        env = str(claims.get("env"))
        user = await self._user_of(product, env, user_id)
        if user is None:
            raise unauthorized()
        return AccessContext(claims, user, product, env, org_id)

    async def request_password_reset(
        self, product: Product, env: str, *, email: str, client_ip: str
    ) -> None:
        """Count the attempt now; the lookup and the mail happen in `send_password_reset`."""
        await self.limiter.hit(self.limits.forgot_ip, "forgot", client_ip)
        await self._hit_account(self.limits.forgot_account, "forgot-account", product, env, email)

    async def send_password_reset(self, product: Product, env: str, email: str) -> None:
        """Mail a reset link if the email belongs to an identity of the product's pool and
        environment (any product of a pool is a way in for the mailbox owner); silent
        otherwise.

        Runs after the response has been sent, so an existing and an unknown email answer
        in the same time with the same body.
        """
        try:
            user = await self._user_by_email(product, env, email)
            if user is None:
                return
            await self._mail_link(PASSWORD_RESET, user, product, env)
        except Exception:
            logger.exception("password reset mail for product %s failed", product.slug)

    def _link_template(self, product: Product, stored: str | None, demo_fragment: str) -> str:
        """The product's link template, or the demo page's link. A template stored before
        templates were checked (a `javascript:` link, say) is never mailed."""
        if stored:
            try:
                return normalize_url_template(stored, https_only=self.settings.production)
            except ValueError:
                logger.warning(
                    "product %s: its stored %s template is not a web link; mailing the default",
                    product.slug,
                    demo_fragment,
                )
        return self._demo_link(demo_fragment)

    async def _mail_link(self, kind: str, user: User, product: Product, env: str) -> None:
        """Mail the user a one-time link of `kind` (password reset or email verification),
        white-labeled as `product`."""
        assert user.email is not None
        if kind == PASSWORD_RESET:
            purpose, ttl = one_time.PASSWORD_RESET, self.settings.reset_token_ttl
            template = self._link_template(product, product.reset_url_template, "reset_token")
        else:
            purpose, ttl = one_time.VERIFY_EMAIL, self.settings.verify_token_ttl
            template = self._link_template(product, product.verify_url_template, "verify_token")
        token = await one_time.issue_token(
            self.db, purpose, user_id=user.id, product_id=product.id, env=env, ttl=ttl
        )
        mail = branded_mail(
            kind,
            to=user.email,
            user_name=user.name,
            locale=user.locale or product.default_locale,
            product_name=product.name,
            from_name=product.mail_from_name,
            from_address=product.mail_from_address or self.settings.mail_from,
            link=template.replace("{token}", token),
            ttl_seconds=ttl,
        )
        await self.mailer.send(mail)

    def _demo_link(self, parameter: str) -> str:
        # Without a product template, the link opens the demo page, which completes the flow.
        return f"{self.settings.public_url}/demo/#{parameter}={{token}}"

    async def send_verification(self, product: Product, env: str, user_id: int) -> None:
        """Mail a verification link to a user whose email is unproven; runs after the
        response (a slow mail server never delays register)."""
        try:
            user = await self._user_of(product, env, user_id)
            if user is None or user.email is None or user.email_verified:
                return
            try:
                await self._hit_account(
                    self.limits.verify_mail_account, "verify-mail", product, env, user.email
                )
            except HubError:
                logger.info("verification mail for user %s skipped: address budget spent", user_id)
                return
            await self._mail_link(VERIFY_EMAIL, user, product, env)
        except Exception:
            logger.exception("verification mail for product %s failed", product.slug)

    async def request_verification(self, ctx: AccessContext) -> None:
        """A logged-in user asks for another verification mail (sent by `send_verification`)."""
        if ctx.user.email is None or ctx.user.email_verified:
            raise HubError(409, "auth.email_already_verified")
        await self.limiter.hit(self.limits.verify_resend, "verify-resend", str(ctx.user.id))

    async def verify_email(self, token: str) -> None:
        async with self.db.transaction():
            grant = await one_time.consume_token(self.db, one_time.VERIFY_EMAIL, token)
            if grant is None:
                raise HubError(400, INVALID_LINK[one_time.VERIFY_EMAIL])
            await self._prove_email(grant.user_id)

    async def _prove_email(self, user_id: int) -> bool:
        """Mark the user's email proven; True if it was not before."""
        user = await accounts.get_user(self.db, user_id)
        if user is None or user.email_verified:
            return False
        await accounts.update_user(self.db, user_id, email_verified_at=utcnow())
        return True

    async def link_grant(
        self, purpose: str, token: str, *, client_ip: str
    ) -> one_time.OneTimeGrant:
        """What a mailed link's token (reset or verification) grants, checked before anything
        is changed; counts the attempt."""
        await self.limiter.hit(self.limits.forgot_ip, purpose, client_ip)
        grant = await one_time.find_token(self.db, purpose, token)
        if grant is None:
            raise HubError(400, INVALID_LINK[purpose])
        return grant

    async def reset_password(self, token: str, password: str) -> None:
        password_hash = await self.hasher.hash(password)
        async with self.db.transaction():
            grant = await one_time.consume_token(self.db, one_time.PASSWORD_RESET, token)
            if grant is None:
                raise HubError(400, INVALID_LINK[one_time.PASSWORD_RESET])
            await accounts.update_user(self.db, grant.user_id, password_hash=password_hash)
            # The link reached the mailbox: the email is proven. Whatever credentials the
            # identity made before that may be a squatter's (a pre-hijacked account), so the
            # first proof by reset revokes its workspace tokens and OAuth applications too.
            if await self._prove_email(grant.user_id):
                await org_credentials.revoke_owned_by(self.db, grant.user_id)
            # Every outstanding link and half-finished login was made with the old password.
            for purpose in one_time.PURPOSES:
                await one_time.discard_user_tokens(self.db, grant.user_id, purpose)
            revoked = await sessions.revoke_user_sessions(self.db, grant.user_id, "password_reset")
        logger.info("password reset for user %s; %d sessions revoked", grant.user_id, len(revoked))
        await self._revoked(revoked)

    async def me(self, ctx: AccessContext) -> dict[str, Any]:
        org = await accounts.user_organization(
            self.db, ctx.user.id, ctx.org_id, ctx.product.id, ctx.env
        )
        subscription = await accounts.get_subscription(self.db, ctx.org_id)
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
            await accounts.update_user(self.db, ctx.user.id, **changes)
        user = await accounts.get_user(self.db, ctx.user.id)
        assert user is not None
        return await self.me(AccessContext(ctx.claims, user, ctx.product, ctx.env, ctx.org_id))
