"""`notification-hub products set-alerts`: where a product's security alerts go besides the
log (its JSON webhook, a Slack incoming webhook, email to its owners and admins)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from databases import Database

from hub.cli_common import (
    add_command,
    announce_product_changed,
    change_or_refuse,
    settings_or_exit,
)


def cmd_products_alerts(args: argparse.Namespace) -> None:
    from auth import product_values, products

    settings = settings_or_exit()
    strict = settings.strict_webhooks

    async def work(db: Database) -> products.Product | None:
        product = await products.get_product_by_slug(db, args.slug)
        if product is None:
            raise SystemExit(f"notification-hub: no product {args.slug!r}")
        if args.alert_webhook_url is not None:
            url = args.alert_webhook_url.strip()
            try:
                clean = product_values.normalize_webhook_url(url, strict=strict) if url else None
            except ValueError as exc:
                raise ValueError(f"--alert-webhook-url: {exc}") from None
            await products.set_alert_webhook(db, product.id, clean)
        try:
            await products.set_alert_destinations(
                db,
                product.id,
                email=args.alert_email,
                slack_url=args.alert_slack_url,
                strict=strict,
            )
        except ValueError as exc:
            raise ValueError(f"--alert-slack-url: {exc}") from None
        await announce_product_changed(settings, product.id)
        return await products.get_product(db, product.id)

    product = change_or_refuse(settings, work)
    # The URLs are secrets (Slack's above all): only whether one is set is printed.
    print(f"{args.slug}: security alerts go to the log and")
    print(f"  webhook: {'set' if product.alert_webhook_url else '(none)'}")
    print(f"  slack:   {'set' if product.alert_slack_url else '(none)'}")
    print(f"  email:   {'owners and admins' if product.alert_email else 'off'}")


def add_alerts_command(commands: Any, *, url: Callable[[str], str]) -> None:
    """Add `set-alerts` to the `products` subcommands (`url`: the URL arguments' type)."""
    alerts = add_command(
        commands,
        "set-alerts",
        help="choose where a product's security alerts go besides the log",
    )
    alerts.add_argument("slug", help="the product")
    alerts.add_argument(
        "--alert-email",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="mail each alert to the product's owners and admins (default: unchanged)",
    )
    alerts.add_argument(
        "--alert-slack-url",
        metavar="URL",
        type=url,
        help='a Slack incoming webhook ("" for none; https and public in production;'
        " default: unchanged)",
    )
    alerts.add_argument(
        "--alert-webhook-url",
        metavar="URL",
        type=url,
        help='where alerts are POSTed as JSON ("" for none; default: unchanged)',
    )
    alerts.set_defaults(run=cmd_products_alerts)
