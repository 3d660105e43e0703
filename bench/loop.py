"""One way to run the bench's own asyncio code: on uvloop when it is installed (it is, with
uvicorn[standard]), because the publisher's and load client's CPU per request is what lets
them stay out of the way of the server being measured."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop when available."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
