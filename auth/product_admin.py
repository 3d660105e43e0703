"""What a product's server does to its own environment: its keys, its settings, its users.

The server API's handlers (`auth/server_routes.py`) validate and authorize; the reads and
writes they lead to are here, so no handler holds a database handle. Everything is scoped
to one product environment: a test key never reaches live data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from databases import Database

from auth import keys
from auth.accounts import User, get_user
from auth.products import (
    Product,
    get_product,
    set_alert_destinations,
    set_alert_webhook,
    set_branding,
    set_origins,
    set_verification,
)
from auth.recipients import resolve_recipients
from infra.errors import HubError

MAX_RESTRICTED_KEYS = 100

_UNCHANGED = object()


class ProductAdmin:
    def __init__(self, db: Database, changed: Callable[[int], Awaitable[None]]) -> None:
        self._db = db
        # Called once a product or one of its keys changed, so no process keeps a stale copy.
        self._changed = changed

    # -- users --------------------------------------------------------------------------

    async def env_user(self, product: Product, env: str, user_id: int) -> User | None:
        """The user if it is one of this product environment (a member of one of its
        organizations); None otherwise, even for an identity of the same pool."""
        found = await resolve_recipients(self._db, product.id, env, user_ids=[user_id])
        return await get_user(self._db, user_id) if found else None

    # -- keys ---------------------------------------------------------------------------

    async def list_keys(self, product: Product, env: str) -> list[keys.ProductKey]:
        return await keys.list_keys(self._db, product.id, env)

    async def key(self, product: Product, env: str, key_id: int) -> keys.ProductKey | None:
        return await keys.get_key(self._db, product.id, env, key_id)

    async def create_restricted_key(
        self, product: Product, env: str, *, scopes: list[str], name: str
    ) -> tuple[keys.ProductKey, str]:
        """A new restricted key and its plaintext; 409 `key.too_many` past the cap."""
        active = [k for k in await self.list_keys(product, env) if k.active]
        if sum(k.kind == "restricted" for k in active) >= MAX_RESTRICTED_KEYS:
            raise HubError(409, "key.too_many")
        return await keys.issue_key(
            self._db, product.id, env, "restricted", scopes=sorted(set(scopes)), name=name
        )

    async def rotate_key(self, key: keys.ProductKey) -> tuple[keys.ProductKey, str]:
        """Raises LookupError if the key was revoked meanwhile."""
        rotated = await keys.rotate_key(self._db, key)
        await self._changed(key.product_id)
        return rotated

    async def revoke_key(self, key: keys.ProductKey) -> None:
        await keys.revoke_key(self._db, key.id, "revoked")
        await self._changed(key.product_id)

    # -- settings -----------------------------------------------------------------------

    async def set_alert_destinations(
        self, product: Product, *, email: bool | None, slack_url: str | None, strict: bool
    ) -> Product:
        """Turn alert email on or off and set the Slack webhook ("" clears it; None leaves a
        setting as it is). The URL is judged as the JSON webhook's (`strict`: production):
        ValueError, or `BlockedTarget` (a ValueError) for an address inside the hub's network.
        The product as stored afterwards; every process forgets its old copy."""
        await set_alert_destinations(
            self._db, product.id, email=email, slack_url=slack_url, strict=strict
        )
        await self._changed(product.id)
        updated = await get_product(self._db, product.id)
        assert updated is not None
        return updated

    async def update_settings(
        self,
        product: Product,
        *,
        origins: list[str] | None,
        alert_webhook: object = _UNCHANGED,
        alert_slack: object = _UNCHANGED,
        alert_email: bool | None = None,
        require_verified_email: bool | None,
        verify_url_template: str | None,
        reset_url_template: str | None,
        https_only: bool,
    ) -> Product:
        """Apply the changes a PATCH named (None or `_UNCHANGED`: left as it is); the
        product as stored afterwards."""
        if origins is not None:
            await set_origins(self._db, product.id, origins)
        if alert_webhook is not _UNCHANGED:
            assert alert_webhook is None or isinstance(alert_webhook, str)
            await set_alert_webhook(self._db, product.id, alert_webhook)
        if alert_slack is not _UNCHANGED or alert_email is not None:
            assert alert_slack is _UNCHANGED or alert_slack is None or isinstance(alert_slack, str)
            # Judged already (the body's check), so this only stores it.
            await set_alert_destinations(
                self._db,
                product.id,
                email=alert_email,
                slack_url=None if alert_slack is _UNCHANGED else alert_slack or "",
            )
        await set_verification(
            self._db,
            product.id,
            require_verified_email=require_verified_email,
            verify_url_template=verify_url_template,
            reset_url_template=reset_url_template,
            https_only=https_only,
        )
        await self._changed(product.id)
        updated = await get_product(self._db, product.id)
        assert updated is not None
        return updated

    async def update_branding(
        self,
        product: Product,
        *,
        default_locale: str,
        mail_from_name: str | None,
        mail_from_address: str | None,
    ) -> Product:
        """The default language and the mail sender; ValueError for an unknown locale."""
        await set_branding(
            self._db,
            product.id,
            default_locale=default_locale,
            mail_from_name=mail_from_name,
            mail_from_address=mail_from_address,
        )
        await self._changed(product.id)
        updated = await get_product(self._db, product.id)
        assert updated is not None
        return updated
