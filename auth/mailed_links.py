"""Mailed one-time links: password reset and email verification.

Both prove the mailbox: a link is issued for a user, mailed white-labeled as the product,
and consumed once. Asking for one answers the same whether or not the email exists (the
lookup and the mail run after the response); following one counts the attempt, checks the
link before anything changes, and a reset revokes every session the old password made.
"""

from __future__ import annotations

import logging

from databases import Database

from auth import accounts, one_time, org_credentials, sessions
from auth.accounts import User
from auth.mail import PASSWORD_RESET, VERIFY_EMAIL, Mailer, branded_mail
from auth.passwords import PasswordHasher
from auth.product_values import normalize_url_template
from auth.products import Product
from auth.ratelimit import RateLimiter
from auth.session_tokens import SessionTokens
from infra.db import utcnow
from infra.errors import HubError
from infra.settings import Settings

logger = logging.getLogger("auth.mailed_links")

# The error of a mailed link that is unknown, expired or used, by purpose.
INVALID_LINK = {
    one_time.PASSWORD_RESET: "auth.invalid_reset_token",
    one_time.VERIFY_EMAIL: "auth.invalid_verification_token",
}


def demo_page_serves(settings: Settings, product_slug: str) -> bool:
    """Whether the hub's demo page completes a mailed link of this product: in development
    it serves any product; in production only the one `HUB_DEMO_PRODUCT` names."""
    return not settings.production or settings.demo_product == product_slug


class MailedLinks:
    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        hasher: PasswordHasher,
        mailer: Mailer,
        limiter: RateLimiter,
        tokens: SessionTokens,
    ) -> None:
        self._db = db
        self._settings = settings
        self._hasher = hasher
        self._mailer = mailer
        self._limiter = limiter
        self._tokens = tokens
        self._limits = settings.rate_limits

    # -- password reset -----------------------------------------------------------------

    async def request_password_reset(
        self, product: Product, env: str, *, email: str, client_ip: str
    ) -> None:
        """Count the attempt now (narrow limits first, then the product's public budget);
        the lookup and the mail happen in `send_password_reset`."""
        await self._limiter.hit(self._limits.forgot_ip, "forgot", client_ip)
        await self._limiter.hit_account(
            self._limits.forgot_account, "forgot-account", product.identity_pool_id, env, email
        )
        await self._limiter.hit_public(self._limits.public_product, product.id, env)

    async def send_password_reset(self, product: Product, env: str, email: str) -> None:
        """Mail a reset link if the email belongs to an identity of the product's pool and
        environment (any product of a pool is a way in for the mailbox owner); silent
        otherwise.

        Runs after the response has been sent, so an existing and an unknown email answer
        in the same time with the same body.
        """
        try:
            user = await accounts.get_user_by_email(self._db, product.identity_pool_id, env, email)
            if user is None:
                return
            await self._mail_link(PASSWORD_RESET, user, product, env)
        except Exception:
            logger.exception("password reset mail for product %s failed", product.slug)

    async def reset_password(self, token: str, password: str) -> None:
        password_hash = await self._hasher.hash(password)
        db = self._db
        async with db.transaction():
            grant = await one_time.consume_token(db, one_time.PASSWORD_RESET, token)
            if grant is None:
                raise HubError(400, INVALID_LINK[one_time.PASSWORD_RESET])
            await accounts.update_user(db, grant.user_id, password_hash=password_hash)
            # The link reached the mailbox: the email is proven. Whatever credentials the
            # identity made before that may be a squatter's (a pre-hijacked account), so the
            # first proof by reset revokes its workspace tokens, OAuth applications and
            # extensions too.
            if await self._prove_email(grant.user_id):
                await org_credentials.revoke_owned_by(db, grant.user_id)
            # Every outstanding link and half-finished login was made with the old password.
            for purpose in one_time.PURPOSES:
                await one_time.discard_user_tokens(db, grant.user_id, purpose)
            revoked = await sessions.revoke_user_sessions(db, grant.user_id, "password_reset")
        logger.info("password reset for user %s; %d sessions revoked", grant.user_id, len(revoked))
        await self._tokens.revoked(revoked)

    # -- email verification -------------------------------------------------------------

    async def send_verification(self, product: Product, env: str, user_id: int) -> None:
        """Mail a verification link to a user whose email is unproven; runs after the
        response (a slow mail server never delays register)."""
        try:
            user = await accounts.get_pool_user(self._db, product.identity_pool_id, env, user_id)
            if user is None or user.email is None or user.email_verified:
                return
            try:
                await self._limiter.hit_account(
                    self._limits.verify_mail_account,
                    "verify-mail",
                    product.identity_pool_id,
                    env,
                    user.email,
                )
            except HubError:
                logger.info("verification mail for user %s skipped: address budget spent", user_id)
                return
            await self._mail_link(VERIFY_EMAIL, user, product, env)
        except Exception:
            logger.exception("verification mail for product %s failed", product.slug)

    async def request_verification(self, user: User) -> None:
        """A logged-in user asks for another verification mail (sent by `send_verification`)."""
        if user.email is None or user.email_verified:
            raise HubError(409, "auth.email_already_verified")
        await self._limiter.hit(self._limits.verify_resend, "verify-resend", str(user.id))

    async def verify_email(self, token: str) -> None:
        async with self._db.transaction():
            grant = await one_time.consume_token(self._db, one_time.VERIFY_EMAIL, token)
            if grant is None:
                raise HubError(400, INVALID_LINK[one_time.VERIFY_EMAIL])
            await self._prove_email(grant.user_id)

    async def _prove_email(self, user_id: int) -> bool:
        """Mark the user's email proven; True if it was not before."""
        user = await accounts.get_user(self._db, user_id)
        if user is None or user.email_verified:
            return False
        await accounts.update_user(self._db, user_id, email_verified_at=utcnow())
        return True

    # -- both ---------------------------------------------------------------------------

    async def link_grant(
        self, purpose: str, token: str, *, client_ip: str
    ) -> one_time.OneTimeGrant:
        """What a mailed link's token (reset or verification) grants, checked before anything
        is changed; counts the attempt."""
        await self._limiter.hit(self._limits.forgot_ip, purpose, client_ip)
        grant = await one_time.find_token(self._db, purpose, token)
        if grant is None:
            raise HubError(400, INVALID_LINK[purpose])
        return grant

    def _link_template(
        self, product: Product, stored: str | None, demo_fragment: str
    ) -> str | None:
        """The product's link template, else the demo page's link where the demo page serves
        this product, else None. A template stored before templates were checked (a
        `javascript:` link, say) is never mailed."""
        if stored:
            try:
                return normalize_url_template(stored, https_only=self._settings.production)
            except ValueError:
                logger.warning(
                    "product %s: its stored %s template is not a web link; mailing the default",
                    product.slug,
                    demo_fragment,
                )
        if not demo_page_serves(self._settings, product.slug):
            return None
        # Without a product template, the link opens the demo page, which completes the flow.
        return f"{self._settings.public_url}/demo/#{demo_fragment}={{token}}"

    async def _mail_link(self, kind: str, user: User, product: Product, env: str) -> None:
        """Mail the user a one-time link of `kind` (password reset or email verification),
        white-labeled as `product`."""
        assert user.email is not None
        settings = self._settings
        if kind == PASSWORD_RESET:
            purpose, ttl = one_time.PASSWORD_RESET, settings.reset_token_ttl
            template = self._link_template(product, product.reset_url_template, "reset_token")
        else:
            purpose, ttl = one_time.VERIFY_EMAIL, settings.verify_token_ttl
            template = self._link_template(product, product.verify_url_template, "verify_token")
        if template is None:
            # A link to a page that answers 404 would only confuse the user; the operator
            # hears why instead (the API's answer stays the same either way).
            setting = "reset_url_template" if kind == PASSWORD_RESET else "verify_url_template"
            logger.warning(
                "product %s has no %s and the demo page does not serve it here: no %s mail "
                "sent; set the product's %s (PATCH /api/v1/product, or --%s-url when creating it)",
                product.slug,
                setting,
                kind,
                setting,
                "reset" if kind == PASSWORD_RESET else "verify",
            )
            return
        token = await one_time.issue_token(
            self._db, purpose, user_id=user.id, product_id=product.id, env=env, ttl=ttl
        )
        mail = branded_mail(
            kind,
            to=user.email,
            user_name=user.name,
            locale=user.locale or product.default_locale,
            product_name=product.name,
            from_name=product.mail_from_name,
            from_address=product.mail_from_address or settings.mail_from,
            link=template.replace("{token}", token),
            ttl_seconds=ttl,
        )
        await self._mailer.send(mail)
