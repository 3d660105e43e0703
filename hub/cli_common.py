"""What every `notification-hub` command shares: its settings, and a database for its work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from databases import Database

from hub.cable.protocol import ProductChanged, encode_control
from infra.broker import CONTROL_CHANNEL, Broker
from infra.db import connect_database
from infra.settings import Settings, SettingsError


def settings_or_exit() -> Settings:
    """The settings from the environment; exit with the reason if they are invalid."""
    try:
        return Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"notification-hub: {exc}") from None


def with_database(settings: Settings, work: Callable[[Database], Awaitable[Any]]) -> Any:
    """Run `work` with a connected database and return its result (closed afterwards)."""

    async def run() -> Any:
        db = connect_database(settings.database_url)
        await db.connect()
        try:
            return await work(db)
        finally:
            await db.disconnect()

    return asyncio.run(run())


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
