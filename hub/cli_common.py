"""What every `notification-hub` command shares: its settings, its help format, and a database
for its work (checked first: hub/preflight.py)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from databases import Database

from hub.cable.protocol import ProductChanged, encode_control
from hub.preflight import open_database, refuse
from infra.broker import CONTROL_CHANNEL, Broker
from infra.settings import Settings, SettingsError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default (where it has one worth showing)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_command(commands: Any, name: str, *, help: str, needs_settings: bool = True) -> Any:
    """A subcommand of `commands` (what `add_subparsers` returned; its class is private) with
    its help shown in the listing and as its own description, and the hub's help format.
    `needs_settings`: the command reads the environment's settings (most do; `keys
    generate-jwt` must work where they are not complete yet)."""
    parser = commands.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
    parser.set_defaults(needs_settings=needs_settings)
    return parser


def settings_or_exit() -> Settings:
    """The settings from the environment; exit with the reason if they are invalid."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        refuse(str(exc))


def with_database(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run `work` with a connected database and return its result (closed afterwards). The
    database must exist and be at the newest schema: a command never creates one (run in the
    wrong directory, it says so in one line instead of leaving an empty hub.db there)."""

    async def run() -> Any:
        db = await open_database(settings.database_url)
        try:
            return await work(db)
        finally:
            await db.disconnect()

    return asyncio.run(run())


def change_or_refuse(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """`with_database` for a command that changes something: a ValueError from `work` (the
    input it was given is refused) ends the command with that message on one line."""
    try:
        return with_database(settings, work)
    except ValueError as exc:
        refuse(str(exc))


async def announce_product_changed(settings: Settings, product_id: int) -> None:
    """Tell the running hub processes (through Redis) to drop what they cached of a product
    whose keys or settings this command changed. Without Redis, or should Redis be down, they
    drop it within `auth.key_cache.KEY_CACHE_SECONDS`."""
    if not settings.redis_url:
        return
    broker = Broker(settings.redis_url, settings.redis_prefix)
    try:
        await broker.publish(CONTROL_CHANNEL, encode_control(ProductChanged(product_id)))
    finally:
        await broker.stop()
