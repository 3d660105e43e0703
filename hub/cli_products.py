"""The operator's commands besides serve and migrate: products and their keys, organization
plans, a new JWT signing key (`notification-hub products|subscriptions|keys …`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from databases import Database

from auth.products import DEFAULT_FEATURES
from hub.cli_alerts import add_alerts_command
from hub.cli_common import (
    add_command,
    announce_product_changed,
    change_or_refuse,
    settings_or_exit,
    with_database,
)


def cmd_products_create(args: argparse.Namespace) -> None:
    from auth import products

    settings = settings_or_exit()
    try:
        product, keys = with_database(
            settings,
            lambda db: products.create_product(
                db,
                slug=args.slug,
                name=args.name,
                origins=args.origin or [],
                default_locale=args.default_locale,
                mail_from_name=args.mail_from_name,
                mail_from_address=args.mail_from_address,
                reset_url_template=args.reset_url,
                verify_url_template=args.verify_url,
                require_verified_email=args.require_verified_email,
                features=tuple(args.feature or products.DEFAULT_FEATURES),
                identity_pool=args.identity_pool,
                https_only=settings.production,
            ),
        )
    except ValueError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None
    except Exception as exc:
        if "unique" in str(exc).lower():
            raise SystemExit(f"notification-hub: a product {args.slug!r} exists already") from None
        raise
    print(f"created product {product.slug!r} ({product.name}), id {product.id}")
    print(f"allowed origins: {', '.join(product.origins) or '(none)'}")
    if args.identity_pool:
        print(f"identity pool: {args.identity_pool} (its products share log-ins)")
    print("\nKeys (shown once, stored only as hashes; keep the secret keys server-side):")
    for name, key in keys.items():
        print(f"  {name:8} {key}")


def cmd_products_list(args: argparse.Namespace) -> None:
    from auth import products

    rows = [
        (p.slug, p.name, " ".join(p.origins) or "(none)")
        for p in with_database(settings_or_exit(), products.list_products)
    ]
    if not rows:
        print("no products yet: create one with `notification-hub products create`")
        return
    header = ("SLUG", "NAME", "ALLOWED ORIGINS")
    slug_width = max(len(row[0]) for row in [header, *rows])
    name_width = max(len(row[1]) for row in [header, *rows])
    for slug, name, origins in [header, *rows]:
        print(f"{slug:{slug_width}}  {name:{name_width}}  {origins}".rstrip())


def cmd_products_origins(args: argparse.Namespace) -> None:
    from auth import products

    async def work(db: Database) -> list[str]:
        product = await products.get_product_by_slug(db, args.slug)
        if product is None:
            raise SystemExit(f"notification-hub: no product {args.slug!r}")
        origins = await products.set_origins(db, product.id, args.origin)
        await announce_product_changed(settings, product.id)
        return origins

    settings = settings_or_exit()
    origins = change_or_refuse(settings, work)
    print(f"allowed origins of {args.slug}: {', '.join(origins) or '(none)'}")


def cmd_products_verification(args: argparse.Namespace) -> None:
    from auth import products

    settings = settings_or_exit()

    async def work(db: Database) -> products.Product | None:
        product = await products.get_product_by_slug(db, args.slug)
        if product is None:
            raise SystemExit(f"notification-hub: no product {args.slug!r}")
        await products.set_verification(
            db,
            product.id,
            require_verified_email=args.require_verified_email,
            verify_url_template=args.verify_url,
            https_only=settings.production,
        )
        await announce_product_changed(settings, product.id)
        return await products.get_product(db, product.id)

    product = change_or_refuse(settings, work)
    required = "required" if product.require_verified_email else "not required"
    print(f"{args.slug}: verified email {required} to log in")
    print(f"verify link: {product.verify_url_template or '(the demo page)'}")


def cmd_products_rotate_key(args: argparse.Namespace) -> None:
    """The way back in when a secret key is lost or leaked: no API call can do it without one."""
    from auth import keys, products

    async def work(db: Database) -> str:
        product = await products.get_product_by_slug(db, args.slug)
        if product is None:
            raise SystemExit(f"notification-hub: no product {args.slug!r}")
        current = await keys.active_key(db, product.id, args.env, args.kind)
        if current is None:
            _, plaintext = await keys.issue_key(db, product.id, args.env, args.kind)
        else:
            _, plaintext = await keys.rotate_key(db, current)
            await announce_product_changed(settings, product.id)
        return plaintext

    settings = settings_or_exit()
    plaintext = with_database(settings, work)
    print(f"new {args.kind} key of {args.slug} ({args.env}); the previous one no longer works:")
    print(f"  {plaintext}")


def cmd_subscriptions_set(args: argparse.Namespace) -> None:
    from auth import accounts

    try:
        found = with_database(
            settings_or_exit(),
            lambda db: accounts.set_subscription_status(db, args.org_id, args.status),
        )
    except ValueError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None
    if not found:
        raise SystemExit(f"notification-hub: organization {args.org_id} has no subscription")
    print(f"organization {args.org_id}: subscription {args.status}")


def cmd_generate_jwt_key(args: argparse.Namespace) -> None:
    from auth.tokens import generate_private_key_pem

    sys.stdout.write(generate_private_key_pem())


# The widths of the products table's columns (auth.tables), which PostgreSQL enforces.
SLUG_CHARS, NAME_CHARS, MAIL_ADDRESS_CHARS, URL_CHARS = 64, 200, 320, 2000
# An id of a row (an INTEGER column: PostgreSQL refuses a larger number outright).
MAX_ID = 2**31 - 1


def _text_up_to(most: int) -> Any:
    """An argument type: text of at most `most` characters (the width of its column)."""

    def parse(text: str) -> str:
        if len(text) > most:
            raise argparse.ArgumentTypeError(f"at most {most} characters, not {len(text)}")
        return text

    return parse


def _row_id(text: str) -> int:
    try:
        value = int(text) if text.isascii() else None
    except ValueError:
        value = None
    if value is None or not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(f"not an id (a whole number from 1): {text!r}")
    return value


def add_operator_commands(commands: Any) -> None:
    """Add `products`, `subscriptions` and `keys` to the `notification-hub` subcommands
    (`commands`: what `ArgumentParser.add_subparsers` returned; its class is private)."""
    products = add_command(commands, "products", help="manage products (tenants)")
    product_commands = products.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = add_command(
        product_commands, "create", help="create a product and print its keys (once)"
    )
    create.add_argument(
        "--slug",
        required=True,
        type=_text_up_to(SLUG_CHARS),
        help="the product's short name in URLs/headers",
    )
    create.add_argument(
        "--name",
        required=True,
        type=_text_up_to(NAME_CHARS),
        help="the product's display name (in mails)",
    )
    create.add_argument(
        "--origin",
        action="append",
        help="allowed browser origin, e.g. https://app.example.com (repeatable; default: none)",
    )
    create.add_argument(
        "--default-locale",
        default="en",
        choices=("en", "cs", "de"),
        help="language of answers and mails when a request names none",
    )
    create.add_argument(
        "--mail-from-name",
        type=_text_up_to(NAME_CHARS),
        help="sender name of its mails (default: the product's name)",
    )
    create.add_argument(
        "--mail-from-address",
        type=_text_up_to(MAIL_ADDRESS_CHARS),
        help="sender address of its mails (default: $HUB_MAIL_FROM)",
    )
    create.add_argument(
        "--reset-url",
        type=_text_up_to(URL_CHARS),
        help="password reset link template containing {token} (default: the demo page)",
    )
    create.add_argument(
        "--verify-url",
        type=_text_up_to(URL_CHARS),
        help="email verification link template containing {token} (default: the demo page)",
    )
    create.add_argument(
        "--require-verified-email",
        action="store_true",
        help="log in only once the email is proven (default: not required)",
    )
    create.add_argument(
        "--identity-pool",
        metavar="NAME",
        type=_text_up_to(SLUG_CHARS),
        help="share user identities (log-ins) with the other products of this named pool,"
        " created on first use (default: a pool of the product's own)",
    )
    create.add_argument(
        "--feature",
        action="append",
        metavar="FEATURE",
        help="plan feature, granted as a JWT scope (repeatable; default:"
        f" {' '.join(DEFAULT_FEATURES)})",
    )
    create.set_defaults(run=cmd_products_create)
    listing = add_command(product_commands, "list", help="list products")
    listing.set_defaults(run=cmd_products_list)
    origins = add_command(
        product_commands, "set-origins", help="replace a product's allowed browser origins"
    )
    origins.add_argument("slug", help="the product")
    origins.add_argument(
        "origin",
        nargs="*",
        help="allowed browser origins, e.g. https://app.example.com (none: no browser access)",
    )
    origins.set_defaults(run=cmd_products_origins)
    verification = add_command(
        product_commands, "set-verification", help="change a product's email verification"
    )
    verification.add_argument("slug", help="the product")
    verification.add_argument(
        "--require-verified-email",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse logins (403 auth.email_unverified) until the email is proven"
        " (default: unchanged)",
    )
    verification.add_argument(
        "--verify-url",
        help='link template containing {token} ("" for the demo page; default: unchanged)',
    )
    verification.set_defaults(run=cmd_products_verification)
    add_alerts_command(product_commands, url=_text_up_to(URL_CHARS))
    rotate = add_command(
        product_commands,
        "rotate-key",
        help="replace a product's publishable or secret key (the old one stops at once)",
    )
    rotate.add_argument("slug", help="the product")
    rotate.add_argument(
        "--env", choices=("live", "test"), default="live", help="the key's environment"
    )
    rotate.add_argument(
        "--kind", choices=("secret", "publishable"), default="secret", help="which key"
    )
    rotate.set_defaults(run=cmd_products_rotate_key)

    subscriptions = add_command(commands, "subscriptions", help="manage organization plans")
    subscription_commands = subscriptions.add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    set_status = add_command(
        subscription_commands, "set", help="set an organization's subscription status"
    )
    set_status.add_argument("org_id", type=_row_id, help="the organization's id")
    set_status.add_argument(
        "status",
        choices=("active", "trialing", "past_due", "canceled"),
        help="the new status (only active and trialing grant the plan's features)",
    )
    set_status.set_defaults(run=cmd_subscriptions_set)

    keys = add_command(commands, "keys", help="signing keys", needs_settings=False)
    key_commands = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    generate = add_command(
        key_commands,
        "generate-jwt",
        help="print a new ES256 private key (PEM) for HUB_JWT_PRIVATE_KEYS",
        needs_settings=False,  # it makes the key a production configuration lacks
    )
    generate.set_defaults(run=cmd_generate_jwt_key)
