"""Products (tenants), their plans and their publishable and secret keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa
from databases import Database

from auth.keys import KEY_PREFIXES, issue_key
from auth.product_values import (
    check_mail_header_text,
    normalize_origin,
    normalize_url_template,
    normalize_webhook_url,
)
from auth.tables import ENVIRONMENTS, identity_pools, plans, products
from infra.db import bound, json_column, utcnow

if TYPE_CHECKING:
    from auth.key_cache import KeyCache
from infra.errors import HubError, unauthorized
from infra.i18n import SUPPORTED_LOCALES
from infra.names import SLUG

DEFAULT_FEATURES = ("notifications",)


@dataclass(frozen=True)
class Product:
    id: int
    slug: str
    name: str
    default_locale: str
    mail_from_name: str | None
    mail_from_address: str | None
    reset_url_template: str | None
    origins: tuple[str, ...]
    alert_webhook_url: str | None = None
    # Users are identities of this pool (and of the request's environment), nowhere else.
    identity_pool_id: int = 0
    require_verified_email: bool = False
    verify_url_template: str | None = None
    # Alert destinations besides the log and the JSON webhook (auth.alert_destinations).
    alert_email: bool = False
    alert_slack_url: str | None = None

    def allows_origin(self, origin: str) -> bool:
        # Exact match only (scheme + host + port): no wildcards, no suffix tricks.
        return origin in self.origins


def _product(row: object) -> Product:
    m = row._mapping  # type: ignore[attr-defined]
    return Product(
        id=m["id"],
        slug=m["slug"],
        name=m["name"],
        default_locale=m["default_locale"],
        mail_from_name=m["mail_from_name"],
        mail_from_address=m["mail_from_address"],
        reset_url_template=m["reset_url_template"],
        origins=tuple(json_column(m["origins"]) or ()),
        alert_webhook_url=m["alert_webhook_url"],
        identity_pool_id=m["identity_pool_id"],
        require_verified_email=bool(m["require_verified_email"]),
        verify_url_template=m["verify_url_template"],
        alert_email=bool(m["alert_email"]),
        alert_slack_url=m["alert_slack_url"],
    )


_BY_SLUG = products.select().where(products.c.slug == sa.bindparam("slug", type_=sa.Text))


async def get_product_by_slug(db: Database, slug: str) -> Product | None:
    if not SLUG.match(slug or ""):
        return None
    row = await db.fetch_one(bound(_BY_SLUG, slug=slug))
    return _product(row) if row else None


_BY_ID = products.select().where(products.c.id == sa.bindparam("product_id", type_=sa.Integer))


async def get_product(db: Database, product_id: int) -> Product | None:
    row = await db.fetch_one(bound(_BY_ID, product_id=product_id))
    return _product(row) if row else None


async def list_products(db: Database) -> list[Product]:
    rows = await db.fetch_all(products.select().order_by(products.c.id))
    return [_product(row) for row in rows]


async def identity_pool_names(db: Database) -> list[str]:
    """Every identity pool's name (a new product may share one to share its log-ins)."""
    rows = await db.fetch_all(sa.select(identity_pools.c.name).order_by(identity_pools.c.name))
    return [row._mapping["name"] for row in rows]


async def all_allowed_origins(db: Database) -> set[str]:
    rows = await db.fetch_all(sa.select(products.c.origins))
    return {origin for row in rows for origin in (json_column(row._mapping["origins"]) or ())}


async def create_product(
    db: Database,
    *,
    slug: str,
    name: str,
    origins: list[str],
    default_locale: str = "en",
    mail_from_name: str | None = None,
    mail_from_address: str | None = None,
    reset_url_template: str | None = None,
    verify_url_template: str | None = None,
    require_verified_email: bool = False,
    features: tuple[str, ...] = DEFAULT_FEATURES,
    identity_pool: str | None = None,
    https_only: bool = False,
) -> tuple[Product, dict[str, str]]:
    """Create a product with its default plan and a publishable + secret key per environment.

    Its users live in a new identity pool named after the slug, or in the named
    `identity_pool` (created on first use), whose products then share log-ins.
    `https_only` (production) refuses http:// link templates.
    Returns the product and the plaintext keys (`pk_live`, `sk_live`, `pk_test`, `sk_test`),
    which exist nowhere else: the database keeps only their hashes.
    """
    if not SLUG.match(slug):
        raise ValueError("slug: lowercase letters, digits and dashes, at most 64 characters")
    if identity_pool is not None and not SLUG.match(identity_pool):
        raise ValueError("identity pool: lowercase letters, digits and dashes, at most 64")
    if default_locale not in SUPPORTED_LOCALES:
        raise ValueError(f"default locale must be one of {', '.join(SUPPORTED_LOCALES)}")
    check_mail_header_text("name", name)
    check_mail_header_text("mail sender name", mail_from_name)
    check_mail_header_text("mail sender address", mail_from_address)
    for what, template in (("reset", reset_url_template), ("verify", verify_url_template)):
        if template is not None:
            try:
                normalize_url_template(template, https_only=https_only)
            except ValueError as exc:
                raise ValueError(f"--{what}-url: {exc}") from None
    clean_origins = sorted({normalize_origin(o) for o in origins})
    now = utcnow()
    keys: dict[str, str] = {}
    if await get_product_by_slug(db, slug) is not None:
        raise ValueError(f"a product {slug!r} exists already")
    async with db.transaction():
        pool_id = await _identity_pool(db, identity_pool, own=slug)
        product_id = await db.execute(
            products.insert().values(
                slug=slug,
                name=name,
                default_locale=default_locale,
                mail_from_name=mail_from_name,
                mail_from_address=mail_from_address,
                reset_url_template=reset_url_template,
                verify_url_template=verify_url_template,
                require_verified_email=require_verified_email,
                origins=clean_origins,
                created_at=now,
                identity_pool_id=pool_id,
            )
        )
        await db.execute(
            plans.insert().values(
                product_id=product_id,
                code="default",
                name="Default",
                features=list(features),
                is_default=True,
            )
        )
        for env in ENVIRONMENTS:
            for kind in ("publishable", "secret"):
                _, keys[f"{KEY_PREFIXES[kind]}_{env}"] = await issue_key(db, product_id, env, kind)
    product = await get_product(db, product_id)
    assert product is not None
    return product, keys


async def _identity_pool(db: Database, name: str | None, *, own: str) -> int:
    """The id of the named pool (created on first use), or of a new pool of the product's
    own, named `own` (refused when that name is taken: joining must be asked for)."""
    row = await db.fetch_one(
        sa.select(identity_pools.c.id).where(identity_pools.c.name == (name or own))
    )
    if row is not None:
        if name is None:
            raise ValueError(
                f"an identity pool {own!r} exists: pass it as the identity pool to share its"
                " log-ins, or choose another slug"
            )
        return row._mapping["id"]
    return await db.execute(identity_pools.insert().values(name=name or own, created_at=utcnow()))


async def set_verification(
    db: Database,
    product_id: int,
    *,
    require_verified_email: bool | None = None,
    verify_url_template: str | None = None,
    reset_url_template: str | None = None,
    https_only: bool = False,
) -> None:
    """Change the product's email verification and link settings (None leaves one as it
    is; an empty template goes back to the default link)."""
    values: dict[str, object] = {}
    if require_verified_email is not None:
        values["require_verified_email"] = require_verified_email
    for column, template in (
        ("verify_url_template", verify_url_template),
        ("reset_url_template", reset_url_template),
    ):
        if template is not None:
            if template:
                normalize_url_template(template, https_only=https_only)
            values[column] = template or None
    if values:
        await db.execute(products.update().where(products.c.id == product_id).values(**values))


async def set_origins(db: Database, product_id: int, origins: list[str]) -> list[str]:
    clean = sorted({normalize_origin(o) for o in origins})
    await db.execute(products.update().where(products.c.id == product_id).values(origins=clean))
    return clean


async def set_alert_webhook(db: Database, product_id: int, url: str | None) -> None:
    await db.execute(
        products.update().where(products.c.id == product_id).values(alert_webhook_url=url)
    )


async def set_branding(
    db: Database,
    product_id: int,
    *,
    default_locale: str,
    mail_from_name: str | None,
    mail_from_address: str | None,
) -> None:
    """The product's default language and the sender its mail carries (None: the product's
    name and the hub's HUB_MAIL_FROM)."""
    if default_locale not in SUPPORTED_LOCALES:
        raise ValueError(f"default locale must be one of {', '.join(SUPPORTED_LOCALES)}")
    check_mail_header_text("mail sender name", mail_from_name)
    check_mail_header_text("mail sender address", mail_from_address)
    await db.execute(
        products.update()
        .where(products.c.id == product_id)
        .values(
            default_locale=default_locale,
            mail_from_name=mail_from_name,
            mail_from_address=mail_from_address,
        )
    )


async def set_alert_destinations(
    db: Database,
    product_id: int,
    *,
    email: bool | None = None,
    slack_url: str | None = None,
    strict: bool = False,
) -> None:
    """Turn the alert email on or off and set the Slack webhook ("" clears it); None leaves a
    setting as it is. The Slack URL is judged as the JSON webhook's is (`normalize_webhook_url`,
    `strict` in production): ValueError, or `BlockedTarget` for an internal address."""
    values: dict[str, object] = {}
    if email is not None:
        values["alert_email"] = email
    if slack_url is not None:
        values["alert_slack_url"] = (
            normalize_webhook_url(slack_url, strict=strict) if slack_url.strip() else None
        )
    if values:
        await db.execute(products.update().where(products.c.id == product_id).values(**values))


async def default_plan_id(db: Database, product_id: int) -> int:
    row = await db.fetch_one(
        sa.select(plans.c.id)
        .where(plans.c.product_id == product_id)
        .order_by(plans.c.is_default.desc(), plans.c.id)
        .limit(1)
    )
    if row is None:
        raise LookupError(f"product {product_id} has no plan")
    return row._mapping["id"]


class ProductDirectory:
    """Product lookups as the flows need them: each answers the error its caller owes.

    A product named by the client (a slug header) that is unknown is a 404; one named by a
    token or a mailed link that is gone means the credential no longer works, a 401.
    """

    def __init__(self, db: Database, cache: KeyCache) -> None:
        self._db = db
        # Products named by tokens (every access-token request, every cable connect).
        self._cache = cache

    async def for_slug(self, slug: str | None) -> Product:
        if not slug:
            raise HubError(400, "product.required")
        product = await get_product_by_slug(self._db, slug.strip().lower())
        if product is None:
            raise HubError(404, "product.not_found")
        return product

    async def by_id(self, product_id: int) -> Product:
        product = await get_product(self._db, product_id)
        if product is None:
            raise unauthorized()
        return product

    async def of_claims(self, claims: dict[str, object]) -> Product:
        """The product a verified token names (by slug)."""
        slug = str(claims.get("product", ""))
        product = self._cache.product(slug)
        if product is not None:
            return product
        generation = self._cache.generation
        product = await get_product_by_slug(self._db, slug)
        if product is None:
            raise unauthorized()
        self._cache.put_product(slug, product, generation)
        return product
