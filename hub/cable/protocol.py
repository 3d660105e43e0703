"""JSON in and out of the cable: a strict decoder for what clients send, a safe encoder for what
the hub sends.

In: Python's `json` accepts what browsers never send and what hurts further down — `NaN` and
`Infinity` (also spelled `1e999`), lone surrogates (`"\\ud800"`, which no database or UTF-8
encoder takes), NUL characters (PostgreSQL text refuses them), and nesting deep enough to
exhaust the interpreter's recursion. `decode` refuses all of them with one `FrameError`,
by `infra.jsonsafe`'s rules (the same as for HTTP bodies) with a lower nesting limit.

Out: `JSON.parse` in a browser cannot read a bare `NaN`, so every frame is encoded with
`allow_nan=False`; a non-finite number that slipped into stored data goes out as `null`
instead of poisoning the frame (or the socket).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from infra import jsonsafe

logger = logging.getLogger("hub.cable")

# ActionCable frames, identifiers and action data are flat objects; 16 levels is plenty.
MAX_DEPTH = 16


class FrameError(ValueError):
    """Text that is not acceptable cable JSON; the message says why (for debug logs only)."""


def decode(text: str) -> Any:
    """The JSON value of `text`; FrameError for anything a browser's JSON.stringify would not
    produce or the hub must not store (see the module's docstring)."""
    try:
        return jsonsafe.loads(text, max_depth=MAX_DEPTH)
    except jsonsafe.UnsafeJSON as exc:
        raise FrameError(exc.reason) from None


def encode(value: Any) -> str:
    """Compact JSON that any JSON.parse reads: ASCII only (a stray surrogate is escaped, never
    an encoding error on the socket) and no NaN/Infinity (sent as null)."""
    try:
        return jsonsafe.dumps(value, separators=(",", ":"))
    except ValueError:
        logger.warning("a cable frame carried a non-finite number; sent as null")
        return jsonsafe.dumps(jsonsafe.finite(value), separators=(",", ":"))


def safe_payload(payload: str) -> str:
    """A message payload encoded elsewhere (a JSON string) with any bare NaN/Infinity turned
    into null. The substring test keeps the common case free; a title that merely says "NaN"
    costs one re-encoding."""
    if "NaN" not in payload and "Infinity" not in payload:
        return payload
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return payload  # not JSON: it travels as an opaque string, which is safe
    return encode(value)
