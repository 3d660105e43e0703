"""What the console's pages work with, built once by `create_app` with its collaborators."""

from __future__ import annotations

from dataclasses import dataclass

from databases import Database
from starlette.requests import HTTPConnection

from auth.mail import Mailer
from auth.passwords import PasswordHasher
from auth.product_admin import ProductAdmin
from auth.ratelimit import RateLimiter
from console.sessions import ConsoleSessions
from infra.settings import Settings


@dataclass(frozen=True)
class ConsoleServices:
    db: Database
    settings: Settings
    sessions: ConsoleSessions
    hasher: PasswordHasher
    limiter: RateLimiter
    mailer: Mailer
    # The auth floor's product changes (keys, settings): each forgets cached copies everywhere.
    product_admin: ProductAdmin


def build_console_services(
    *,
    db: Database,
    settings: Settings,
    hasher: PasswordHasher,
    limiter: RateLimiter,
    mailer: Mailer,
    product_admin: ProductAdmin,
) -> ConsoleServices:
    return ConsoleServices(
        db=db,
        settings=settings,
        sessions=ConsoleSessions(
            db,
            idle_seconds=settings.console.idle_seconds,
            absolute_seconds=settings.console.absolute_seconds,
        ),
        hasher=hasher,
        limiter=limiter,
        mailer=mailer,
        product_admin=product_admin,
    )


def console_services(connection: HTTPConnection) -> ConsoleServices:
    """The console services of the app serving `connection`."""
    return connection.app.state.services.console
