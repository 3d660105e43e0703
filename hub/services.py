"""The app's services as one typed object, built once by `create_app`.

Stored as `app.state.services`; each floor reads its own part through a typed accessor
(`auth.services.auth_services` for the auth floor; `services(…)` here for the wiring). It
replaces one ad-hoc `app.state` name per service.
"""

from __future__ import annotations

from dataclasses import dataclass

from databases import Database
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from auth.services import AuthServices
from console.services import ConsoleServices
from hub.cable.registry import CableRegistry
from infra.broker import Broker
from infra.live_status import LiveStatus
from infra.settings import Settings
from notifications.service import NotificationService


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database  # for the lifespan and the readiness probe; routes use the services
    broker: Broker
    auth: AuthServices
    console: ConsoleServices
    notifications: NotificationService
    cable: CableRegistry
    live_status: LiveStatus  # every process's sockets and deliveries per product


def app_services(app: Starlette) -> Services:
    return app.state.services


def services(connection: HTTPConnection) -> Services:
    """The services of the app serving `connection` (an HTTP request or a WebSocket)."""
    return app_services(connection.app)
