"""Run a coroutine inline until it first has to wait; only then does it become a task.

Writing a frame to a socket whose transport is not backed up finishes without ever
suspending (uvicorn and websockets only wait when the transport is paused), so a task per
frame, or a writer task per socket waiting for frames, is mostly overhead: thousands of idle
sockets would each keep one alive. `start` steps the coroutine synchronously; if it
completes, no task is ever made. If it suspends (on a future, or a bare `yield` such as
`asyncio.sleep(0)`), the rest of it runs in a task, with the same results, exceptions and
cancellation as if it had been a task from the start. (Python 3.12's
`asyncio.Task(..., eager_start=True)` does the same; the hub still supports 3.11.)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Coroutine
from typing import Any


def start(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` up to its first suspension: None if it finished (an exception it raised
    propagates to the caller), else the task that finishes it."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_finish(coro, waiting_on))


async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    """Drive `coro` as a task would: wait for what it yielded, then resume it (it reads the
    future's result or exception itself); a cancellation is thrown in where it waits."""
    while True:
        try:
            if waiting_on is None:  # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            else:
                await asyncio.wait((waiting_on,))
        except asyncio.CancelledError:
            if waiting_on is not None:
                waiting_on.cancel()
            resume = functools.partial(coro.throw, asyncio.CancelledError())
        else:
            resume = functools.partial(coro.send, None)
        try:
            waiting_on = resume()
        except StopIteration:
            return
