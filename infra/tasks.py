"""Stopping the process's background tasks (listeners, timers, the collector policy)."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Cancel `task` and wait until it has ended; its own cancellation is not an error here,
    a cancellation of the caller still is (it arrives while waiting, like any other)."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
