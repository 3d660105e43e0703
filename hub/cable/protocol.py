"""JSON in and out of the cable: a strict decoder for what clients send, a safe encoder for what
the hub sends.

In: Python's `json` accepts what browsers never send and what hurts further down — `NaN` and
`Infinity` (also spelled `1e999`), lone surrogates (`"\\ud800"`, which no database or UTF-8
encoder takes), NUL characters (PostgreSQL text refuses them), and nesting deep enough to
exhaust the interpreter's recursion. `decode` refuses all of them with one `FrameError`.

Out: `JSON.parse` in a browser cannot read a bare `NaN`, so every frame is encoded with
`allow_nan=False`; a non-finite number that slipped into stored data goes out as `null`
instead of poisoning the frame (or the socket).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

logger = logging.getLogger("hub.cable")

# ActionCable frames, identifiers and action data are flat objects; 16 levels is plenty.
MAX_DEPTH = 16


class FrameError(ValueError):
    """Text that is not acceptable cable JSON; the message says why (for debug logs only)."""


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise FrameError("non-finite number")
    return value


def _no_constant(name: str) -> Any:
    raise FrameError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise FrameError("NUL character")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise FrameError("lone surrogate") from None


def decode(text: str) -> Any:
    """The JSON value of `text`; FrameError for anything a browser's JSON.stringify would not
    produce or the hub must not store (see the module's docstring)."""
    try:
        value = _DECODER.decode(text)
    except FrameError:
        raise
    except (ValueError, RecursionError) as exc:
        raise FrameError(f"not JSON: {type(exc).__name__}") from None
    # An explicit stack, not recursion: the value may be as deep as the C parser allowed.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise FrameError("nested too deeply")
            if isinstance(item, dict):
                for key in item:
                    _check_text(key)
                item = item.values()
            stack.extend((child, depth + 1) for child in item)
    return value


def _finite_only(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_only(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_only(item) for item in value]
    return value


def encode(value: Any) -> str:
    """Compact JSON that any JSON.parse reads: ASCII only (a stray surrogate is escaped, never
    an encoding error on the socket) and no NaN/Infinity (sent as null)."""
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except ValueError:
        logger.warning("a cable frame carried a non-finite number; sent as null")
        return json.dumps(_finite_only(value), separators=(",", ":"), allow_nan=False)


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
