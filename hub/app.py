"""The application factory: builds the services from settings and mounts every domain's routes."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from auth import sessions
from auth.alert_destinations import AlertRecipients
from auth.alerts import SecurityAlerts
from auth.extension_routes import routes as extension_routes
from auth.mail import make_mailer
from auth.org_routes import routes as org_routes
from auth.origins import CORSMiddleware
from auth.passwords import PasswordHasher
from auth.ratelimit import RateLimiter
from auth.routes import routes as auth_routes
from auth.server_routes import routes as server_routes
from auth.services import build_auth_services
from auth.tokens import TokenSigner, load_or_create_dev_key, load_signing_keys
from channels import NotificationsChannel
from console.alert_recipients import ConsoleAlertRecipients
from console.oidc_sign_in import single_sign_on
from console.routes import routes as console_routes
from console.services import build_console_services
from hub.cable import protocol
from hub.cable.endpoint import CABLE_PATH, CableEndpoint
from hub.cable.endpoint import routes as cable_routes
from hub.cable.leases import SocketLeases
from hub.cable.node import CableNode
from hub.cable.registry import CableRegistry
from hub.demo import check_demo_product, ensure_demo_product
from hub.demo import routes as demo_routes
from hub.migrate import head_revision
from hub.openapi import routes as openapi_routes
from hub.operations import routes as operation_routes
from hub.services import Services
from infra.broker import Broker
from infra.db import connect_database
from infra.errors import HubError, handle_http_exception, handle_hub_error, handle_unexpected
from infra.gc_policy import CollectorPolicy
from infra.http import InputCharactersMiddleware
from infra.live_status import LiveStatus
from infra.logs import request_id
from infra.metrics import CONNECTIONS, SUBSCRIPTIONS
from infra.request_ids import RequestIdMiddleware, request_id_of
from infra.settings import Settings
from notifications.routes import development_routes
from notifications.routes import routes as notification_routes
from notifications.service import NotificationService

logger = logging.getLogger("hub.app")


def build_signer(settings: Settings) -> TokenSigner:
    pem = settings.jwt_private_keys_pem
    if pem is None:
        pem = load_or_create_dev_key(settings.dev_key_file)
    return TokenSigner(load_signing_keys(pem), settings.jwt_issuer)


class HubApp(Starlette):
    """The hub's Starlette app, with the cable's sockets let in at the front door.

    Every middleware layer and Starlette's router keep a coroutine (and some their closures)
    alive for as long as the request they pass on lasts, which for a cable socket is hours:
    measured at 5,000 sockets, skipping them saved 4.5 KB of memory per socket and 7% of the
    connect time. None of them does anything for `/cable`: the error and CORS layers pass
    WebSockets through, the input check reads only HTTP, and the endpoint answers its own
    errors (`hub.cable.endpoint`). What the socket still needs from them, its request id for
    the log and the app in its scope, is set here. Every other request takes the stack.

    `__call__` returns the coroutine it hands on instead of awaiting it (so no frame of its
    own stays), which servers that guess the interface read as ASGI 2: serve it with
    `interface="asgi3"`, as `notification-hub serve` does."""

    def __init__(self, *, cable: ASGIApp, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._cable = cable

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        if scope["type"] == "websocket" and scope["path"] == CABLE_PATH:
            scope["app"] = self
            # Set in the socket's own task (uvicorn runs each connection in one), for its life.
            request_id.set(request_id_of(scope))
            return self._cable(scope, receive, send)
        return super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, alert_recipients: AlertRecipients | None = None
) -> Starlette:
    """The hub. `alert_recipients` names who is mailed a product's security alerts; by
    default the product's console owners and admins."""
    settings = settings or Settings.from_env()
    signer = build_signer(settings)
    head_revision()  # read the migration files now, not in the event loop at the first /readyz
    db = connect_database(
        settings.database_url,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        statement_timeout=settings.db_statement_timeout,
    )
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        threads=settings.hash_threads,
    )
    broker = Broker(settings.redis_url, settings.redis_prefix, gap_notice=protocol.recover_notice)
    notifications = NotificationService(db, broker)

    # The cable: streams ↔ sockets (registry), sessions, control and timers (node), the
    # socket handler (endpoint) and the channels it may open, each with its service.
    leases = None  # sockets per user across processes need Redis
    if settings.redis_url:
        lease = settings.cable.socket_lease_seconds
        leases = SocketLeases(settings.redis_url, settings.redis_prefix, lease)
    cable = CableNode(
        broker,
        CableRegistry(broker),
        revoked_among=functools.partial(sessions.inactive_among, db),
        leases=leases,
        # `auth` is built below; a control message only arrives once the app runs.
        on_product_changed=lambda product_id: auth.credentials.live_keys.forget_product(product_id),
    )

    live_status = LiveStatus(
        settings.redis_url, settings.redis_prefix, cable.connections_by_product
    )

    mailer = make_mailer(settings.smtp_url, development=not settings.production)
    alerts = SecurityAlerts(
        allow_internal=not settings.strict_webhooks,
        mailer=mailer,
        recipients=alert_recipients or ConsoleAlertRecipients(db),
        mail_from=settings.mail_from,
    )
    limiter = RateLimiter(settings.redis_url, settings.redis_prefix)
    auth = build_auth_services(
        db=db,
        settings=settings,
        signer=signer,
        hasher=hasher,
        mailer=mailer,
        limiter=limiter,
        alerts=alerts,
        on_sessions_revoked=cable.announce_revoked,
        announce_product_changed=cable.announce_product_changed,
    )
    console = build_console_services(
        db=db,
        settings=settings,
        hasher=hasher,
        limiter=limiter,
        mailer=mailer,
        product_admin=auth.product_admin,
    )
    oidc, oidc_routes = single_sign_on(settings, signer)
    cable_endpoint = CableEndpoint(
        node=cable,
        channels={
            NotificationsChannel.name: functools.partial(
                NotificationsChannel, service=notifications
            )
        },
        limits=settings.cable,
    )

    collector = CollectorPolicy()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.connect()
        await broker.start()
        await cable.start()
        await live_status.start()
        try:
            if not settings.production:
                await ensure_demo_product(db, settings)
            await check_demo_product(db, settings)
            collector.start()  # last: what start-up built is frozen with the process
            yield
        finally:
            await collector.stop()
            await cable.disconnect_all(protocol.DisconnectReason.SERVER_RESTART)
            await cable.stop()
            await live_status.stop()
            await broker.stop()
            if leases is not None:
                await leases.close()
            await db.disconnect()
            await alerts.close()
            if oidc is not None:
                await oidc.aclose()
            hasher.close()

    routes = [
        *auth_routes,
        *server_routes,
        *org_routes,
        *extension_routes,
        *notification_routes,
        *oidc_routes,  # before the console's /console mount, which would answer 404
        *console_routes,
        *cable_routes(cable_endpoint),
        *([] if settings.production else development_routes),
        *operation_routes,
        *openapi_routes,
        *demo_routes(settings),
    ]
    app = HubApp(
        cable=cable_endpoint,
        routes=routes,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(CORSMiddleware, database=lambda: db),
            Middleware(InputCharactersMiddleware),
        ],
        exception_handlers={
            HubError: handle_hub_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
    # No 307 to the slash-less (or slashed) twin of an unknown path: such a redirect came before
    # any credential check, outside the error shape, and sent a secret key on to a second URL
    # built from forwarded headers. An unknown path is the ordinary 404; `/demo` has its own
    # redirect route above.
    app.router.redirect_slashes = False
    CONNECTIONS.set_function(lambda: len(cable.connections))
    SUBSCRIPTIONS.set_function(lambda: sum(len(c.subscriptions) for c in cable.connections))
    app.state.services = Services(
        settings=settings,
        db=db,
        broker=broker,
        auth=auth,
        console=console,
        notifications=notifications,
        cable=cable,
        live_status=live_status,
    )
    return app
