"""The `notification-hub` command: serve, migrate, and the operator's product tools."""

# (This docstring is the `--help` description. The product tools are in hub/cli_products.py.)

from __future__ import annotations

import argparse
import importlib.metadata
import logging.config
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import uvicorn
from starlette.applications import Starlette

from hub.cable.protocol import DisconnectReason
from hub.cli_common import HelpFormatter, add_command, settings_or_exit, with_database
from hub.cli_console import add_console_commands
from hub.cli_products import add_operator_commands
from hub.http_protocol import bounded_head_protocol
from hub.preflight import check_database, check_secrets, migrate_database
from hub.ws_protocol import CycleFreeWebSocketProtocol
from infra.db import utcnow
from infra.forwarded import behind_proxies
from infra.logs import logging_config
from infra.settings import Settings

logger = logging.getLogger("hub.startup")


def cmd_serve(args: argparse.Namespace) -> None:
    base = settings_or_exit()
    host = args.host or base.host
    port = args.port or base.port
    if "HUB_PUBLIC_URL" not in os.environ:
        # The demo product allows the hub's own origin; make that the address we listen on.
        # (In the environment, so that worker processes read the same settings.)
        own_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104
        os.environ["HUB_PUBLIC_URL"] = f"http://{own_host}:{port}"
    if args.workers:
        os.environ["HUB_WORKERS"] = str(args.workers)
    settings = settings_or_exit()  # again: validated with the workers and address chosen here
    check_secrets(settings)
    if settings.production:
        check_database(settings)  # production never migrates by itself: the release step does
    else:
        applied = migrate_database(settings.database_url)
        if applied:
            logger.info("migrated the database: %s", migration_report(applied))
    if settings.production and not settings.smtp_url:
        # Once at start: otherwise the first sign is a warning per mail not sent.
        logger.warning(
            "SMTP_URL is unset: this hub sends no emails (password resets, verification);"
            " set SMTP_URL to your mail server (smtp://host:587?starttls=true)"
        )
    if settings.workers == 1:
        _run_server(host, port)
        return
    if not settings.production:
        # Once here rather than racing in every worker.
        from hub.app import build_signer, ensure_demo_product

        build_signer(settings)
        with_database(settings, lambda db: ensure_demo_product(db, settings))
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
        behind_proxies(app, settings.trusted_proxies) if app is not None else None,
        host=host,
        port=port,
        log_config=logging_config(settings.log_level, development=not settings.production),
        # Client address and scheme from trusted proxies: `behind_proxies` wraps the app
        # as uvicorn's proxy_headers would, reading X-Forwarded-Proto case-insensitively.
        proxy_headers=False,
        # The app's outer layers are plain functions returning the inner coroutine (so they
        # keep no frame per socket); uvicorn would take such an app for ASGI 2.
        interface="asgi3",
        http=bounded_head_protocol(
            settings.max_head_bytes, settings.head_timeout, settings.body_timeout
        ),
        # uvicorn's own WebSocket protocol, minus a reference cycle per socket (see the module).
        ws=CycleFreeWebSocketProtocol,
        ws_max_size=1024 * 1024,  # hard cap; the cable counts frames over 64 KiB as invalid
        # WebSocket pings find clients that vanished without closing (the cable's own pings
        # get no answer): 60 s, not uvicorn's 20. Each keepalive round makes new objects for
        # every socket (a timer, a parser generator), which the collector then walks: at
        # 5,000 sockets and 3,000 notifications/s the longest pause fell from 43-53 ms to
        # 10-30 ms. A vanished client is let go within 80 s (60 s + the 20 s pong wait).
        ws_ping_interval=60.0,
        # No permessage-deflate, which every browser offers: its zlib state, kept for the
        # socket's life (context takeover), costs ~40 KB per socket, more than the rest of
        # the socket together, to shrink frames of a few hundred bytes (ActionCable servers
        # do not compress either).
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=10,
    )


def _run_server(host: str, port: int, listener: socket.socket | None = None) -> None:
    """One server process: the app, and uvicorn on `listener` (or its own socket)."""
    from hub.app import create_app

    settings = settings_or_exit()
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
    settings = settings_or_exit()
    applied = migrate_database(settings.database_url)
    print(migration_report(applied))


def migration_report(applied: list[str]) -> str:
    """What a migration did, in one line."""
    from hub.migrate import head_revision, revision_name

    head = revision_name(head_revision())
    if not applied:
        return f"nothing to do: the database is already at {head}"
    return f"applied {', '.join(applied)}; the database is at {head}"


def cmd_prune(args: argparse.Namespace) -> None:
    from notifications.retention import prune

    settings = settings_or_exit()
    now = utcnow()
    pruned = with_database(
        settings,
        lambda db: prune(
            db,
            notifications_before=now - timedelta(days=args.days),
            idempotency_keys_before=now - timedelta(hours=args.idempotency_hours),
        ),
    )
    print(
        f"deleted {pruned.notifications} notifications older than {args.days}"
        f" day{'' if args.days == 1 else 's'} and {pruned.idempotency_keys} idempotency keys"
        f" older than {args.idempotency_hours} hour{'' if args.idempotency_hours == 1 else 's'}"
    )


def _count_up_to(most: int) -> Callable[[str], int]:
    """An argument type: a whole number from 1 to `most` (a port, a process count; for the
    retention options, beyond any sane retention and within what a date can be set back by)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be from 1 to {most}, not {value}")
        return value

    return parse


def _version() -> str:
    try:
        return importlib.metadata.version("notification-hub")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout, not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notification-hub", description=__doc__, formatter_class=HelpFormatter
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {_version()}", help="print the version"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = add_command(
        commands,
        "serve",
        help="run the hub (development: migrates first; production: refuses a database that"
        " is not at the newest schema)",
    )
    serve.add_argument("--host", help="address to listen on (default: $HOST or 127.0.0.1)")
    serve.add_argument(
        "--port", type=_count_up_to(65535), help="port to listen on (default: $PORT or 8000)"
    )
    serve.add_argument(
        "--workers",
        type=_count_up_to(1024),
        help="server processes (default: $HUB_WORKERS, $WEB_CONCURRENCY or 1)",
    )
    serve.set_defaults(run=cmd_serve)

    migrate = add_command(
        commands,
        "migrate",
        help="bring the database schema up to date (creates a SQLite file if need be)",
    )
    migrate.set_defaults(run=cmd_migrate)

    prune = add_command(
        commands,
        "prune",
        help="delete old notifications and idempotency keys (run it from cron or a scheduler)",
    )
    prune.add_argument(
        "--days",
        type=_count_up_to(36_500),
        required=True,
        help="delete notifications created more than this many days ago",
    )
    prune.add_argument(
        "--idempotency-hours",
        type=_count_up_to(876_000),
        default=24,
        help="delete idempotency keys older than this: a retry after it publishes again",
    )
    prune.set_defaults(run=cmd_prune)

    add_operator_commands(commands)
    add_console_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.needs_settings:
        settings = settings_or_exit()
        logging.config.dictConfig(
            logging_config(settings.log_level, development=not settings.production)
        )
    args.run(args)


if __name__ == "__main__":
    main()
