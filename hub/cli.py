"""The `notification-hub` command: serve, migrate, and the operator's product tools."""

from __future__ import annotations

import argparse
import asyncio
import logging.config
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn
from databases import Database
from starlette.applications import Starlette

from hub.cable.protocol import DisconnectReason
from hub.http_protocol import bounded_head_protocol
from infra.db import connect_database
from infra.logs import logging_config
from infra.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None


def _with_db(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        db = connect_database(settings.database_url)
        await db.connect()
        try:
            return await work(db)
        finally:
            await db.disconnect()

    return asyncio.run(run())


def cmd_serve(args: argparse.Namespace) -> None:
    base = _settings()
    host = args.host or base.host
    port = args.port or base.port
    if "HUB_PUBLIC_URL" not in os.environ:
        # The demo product allows the hub's own origin; make that the address we listen on.
        # (In the environment, so that worker processes read the same settings.)
        own_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        os.environ["HUB_PUBLIC_URL"] = f"http://{own_host}:{port}"
    if args.workers:
        os.environ["HUB_WORKERS"] = str(args.workers)
    settings = _settings()  # again: validated with the workers and address chosen here
    if not settings.production:
        from hub.migrate import migrate

        migrate(settings.database_url)
    if settings.workers == 1:
        _run_server(host, port)
        return
    if not settings.production:
        # Once here rather than racing in every worker.
        from hub.app import build_signer, ensure_demo_product

        build_signer(settings)
        _with_db(settings, lambda db: ensure_demo_product(db, settings))
    # Several processes share one listening socket; the kernel spreads connections over them.
    listener = _server_config(settings, host, port).bind_socket()
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_run_server, args=(host, port, listener), name=f"hub-worker-{i}")
        for i in range(settings.workers)
    ]
    for worker in workers:
        worker.start()

    def stop(signum: int, frame: object) -> None:
        for worker in workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    # One worker gone is the whole server gone: exit, so the platform restarts it cleanly.
    multiprocessing.connection.wait([w.sentinel for w in workers])
    stop(signal.SIGTERM, None)
    for worker in workers:
        worker.join()
    # uvicorn re-raises the signal it stopped on once it has shut down cleanly.
    clean = (0, -signal.SIGTERM, -signal.SIGINT)
    sys.exit(0 if all(w.exitcode in clean for w in workers) else 1)


def _server_config(settings: Settings, host: str, port: int, app: Any = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=logging_config(settings.log_level, development=not settings.production),
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
        http=bounded_head_protocol(settings.max_head_bytes, settings.head_timeout),
        ws_max_size=1024 * 1024,  # hard cap; the cable counts frames over 64 KiB as invalid
        timeout_graceful_shutdown=10,
    )


def _run_server(host: str, port: int, listener: socket.socket | None = None) -> None:
    """One server process: the app, and uvicorn on `listener` (or its own socket)."""
    from hub.app import create_app

    settings = _settings()
    app = create_app(settings)
    server = CableAwareServer(_server_config(settings, host, port, app), app)
    server.run(sockets=[listener] if listener is not None else None)


class CableAwareServer(uvicorn.Server):
    """uvicorn's server, telling cable clients `server_restart` before it closes sockets.

    (uvicorn closes WebSockets before the app's lifespan shutdown runs, which would be too
    late to say why.)
    """

    def __init__(self, config: uvicorn.Config, app: Starlette) -> None:
        super().__init__(config)
        self.hub_app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        from hub.services import app_services  # loaded with the app, as hub.app above

        await app_services(self.hub_app).cable.disconnect_all(DisconnectReason.SERVER_RESTART)
        await super().shutdown(sockets)


def cmd_migrate(args: argparse.Namespace) -> None:
    from hub.migrate import migrate

    settings = _settings()
    migrate(settings.database_url)
    print("database is at the newest schema")


def cmd_products_create(args: argparse.Namespace) -> None:
    from auth import products

    settings = _settings()
    try:
        product, keys = _with_db(
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

    for product in _with_db(_settings(), products.list_products):
        print(f"{product.slug:24} {product.name:24} {' '.join(product.origins)}")


def cmd_products_origins(args: argparse.Namespace) -> None:
    from auth import products

    async def work(db: Database) -> list[str]:
        product = await products.get_product_by_slug(db, args.slug)
        if product is None:
            raise SystemExit(f"notification-hub: no product {args.slug!r}")
        return await products.set_origins(db, product.id, args.origin)

    try:
        origins = _with_db(_settings(), work)
    except ValueError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None
    print(f"allowed origins of {args.slug}: {', '.join(origins) or '(none)'}")


def cmd_products_verification(args: argparse.Namespace) -> None:
    from auth import products

    settings = _settings()

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
        return await products.get_product(db, product.id)

    try:
        product = _with_db(settings, work)
    except ValueError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None
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
        return plaintext

    plaintext = _with_db(_settings(), work)
    print(f"new {args.kind} key of {args.slug} ({args.env}); the previous one no longer works:")
    print(f"  {plaintext}")


def cmd_subscriptions_set(args: argparse.Namespace) -> None:
    from auth import accounts

    try:
        found = _with_db(
            _settings(), lambda db: accounts.set_subscription_status(db, args.org_id, args.status)
        )
    except ValueError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None
    if not found:
        raise SystemExit(f"notification-hub: organization {args.org_id} has no subscription")
    print(f"organization {args.org_id}: subscription {args.status}")


def cmd_generate_jwt_key(args: argparse.Namespace) -> None:
    from auth.tokens import generate_private_key_pem

    sys.stdout.write(generate_private_key_pem())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notification-hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the hub (development: migrates first)")
    serve.add_argument("--host", help="default: $HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, help="default: $PORT or 8000")
    serve.add_argument(
        "--workers",
        type=int,
        help="server processes (default: $HUB_WORKERS, $WEB_CONCURRENCY or 1)",
    )
    serve.set_defaults(run=cmd_serve)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.set_defaults(run=cmd_migrate)

    products = commands.add_parser("products", help="manage products (tenants)")
    product_commands = products.add_subparsers(dest="action", required=True)
    create = product_commands.add_parser("create", help="create a product and print its keys")
    create.add_argument("--slug", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--origin", action="append", help="allowed browser origin (repeatable)")
    create.add_argument("--default-locale", default="en", choices=("en", "cs", "de"))
    create.add_argument("--mail-from-name")
    create.add_argument("--mail-from-address")
    create.add_argument("--reset-url", help="password reset link template containing {token}")
    create.add_argument("--verify-url", help="email verification link template with {token}")
    create.add_argument(
        "--require-verified-email",
        action="store_true",
        help="log in only once the email is proven (default: not required)",
    )
    create.add_argument(
        "--identity-pool",
        metavar="NAME",
        help="share user identities (log-ins) with the other products of this named pool,"
        " created on first use (default: a pool of the product's own)",
    )
    create.add_argument("--feature", action="append", help="plan feature → JWT scope (repeatable)")
    create.set_defaults(run=cmd_products_create)
    listing = product_commands.add_parser("list", help="list products")
    listing.set_defaults(run=cmd_products_list)
    origins = product_commands.add_parser("set-origins", help="replace a product's origins")
    origins.add_argument("slug")
    origins.add_argument("origin", nargs="*")
    origins.set_defaults(run=cmd_products_origins)
    verification = product_commands.add_parser(
        "set-verification", help="change a product's email verification settings"
    )
    verification.add_argument("slug")
    verification.add_argument(
        "--require-verified-email",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refuse logins (403 auth.email_unverified) until the email is proven",
    )
    verification.add_argument(
        "--verify-url", help='link template containing {token} ("" for the default)'
    )
    verification.set_defaults(run=cmd_products_verification)
    rotate = product_commands.add_parser(
        "rotate-key", help="replace a product's publishable or secret key (old one stops now)"
    )
    rotate.add_argument("slug")
    rotate.add_argument("--env", choices=("live", "test"), default="live")
    rotate.add_argument("--kind", choices=("secret", "publishable"), default="secret")
    rotate.set_defaults(run=cmd_products_rotate_key)

    subscriptions = commands.add_parser("subscriptions", help="manage organization plans")
    subscription_commands = subscriptions.add_subparsers(dest="action", required=True)
    set_status = subscription_commands.add_parser("set", help="set a subscription's status")
    set_status.add_argument("org_id", type=int)
    set_status.add_argument("status", choices=("active", "trialing", "past_due", "canceled"))
    set_status.set_defaults(run=cmd_subscriptions_set)

    keys = commands.add_parser("keys", help="signing keys")
    key_commands = keys.add_subparsers(dest="action", required=True)
    generate = key_commands.add_parser(
        "generate-jwt", help="print a new ES256 private key (PEM) for HUB_JWT_PRIVATE_KEYS"
    )
    generate.set_defaults(run=cmd_generate_jwt_key)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = _settings()
    logging.config.dictConfig(
        logging_config(settings.log_level, development=not settings.production)
    )
    args.run(args)


if __name__ == "__main__":
    main()
