"""Strict JSON in and browser-safe JSON out, for every door of the hub (HTTP bodies, cable frames).

Python's `json` accepts more than browsers and databases do: `NaN`, `Infinity` and numbers
that overflow to infinity (which `JSON.parse` rejects, or, for integer literals of 309 digits
and more, reads as `Infinity`), `\\u0000` (which PostgreSQL cannot
store in text or jsonb), unpaired surrogates such as `\\ud800` (which cannot be encoded as
UTF-8, so the answer itself fails), and nesting deep enough to exhaust the parser's recursion
(a `RecursionError`, not a `ValueError`). `loads` refuses all of them with `UnsafeJSON`;
`dumps` never writes `NaN`; `finite` repairs values stored before these checks existed.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

# Deeper than any real notification payload or request body, far below the recursion limit.
MAX_DEPTH = 64

# NUL and the surrogate code points (only ever unpaired in a decoded `str`).
_FORBIDDEN = re.compile("[\x00\ud800-\udfff]")
# A JSON string literal (the unrolled form backtracks linearly on long strings).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
# The escapes that can decode to NUL or a surrogate (most bodies have none: skip the walk).
_RISKY_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class UnsafeJSON(ValueError):
    """JSON that the hub refuses; `reason` is "malformed" or "characters"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def has_forbidden_characters(text: str) -> bool:
    """True when `text` holds NUL or an unpaired surrogate (neither survives storage)."""
    return _FORBIDDEN.search(text) is not None


def _refuse_constant(name: str) -> Any:
    raise UnsafeJSON("malformed")  # NaN, Infinity, -Infinity


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses as inf without passing parse_constant
        raise UnsafeJSON("malformed")
    return value


# Digits of the largest finite double (about 1.8e308): longer integers are never finite.
_MAX_DOUBLE_DIGITS = len(str(int(sys.float_info.max)))


def _finite_int(literal: str) -> int:
    """An integer a browser reads as a number: `JSON.parse` turns one beyond the double range
    into Infinity, which it then cannot send back (the length check also spares parsing a
    4,000-digit literal)."""
    if len(literal) < _MAX_DOUBLE_DIGITS:  # the common case: short, always finite
        return int(literal)
    if len(literal.lstrip("-")) > _MAX_DOUBLE_DIGITS:
        raise UnsafeJSON("malformed")
    value = int(literal)
    try:
        float(value)  # rounds like JSON.parse: OverflowError exactly where it gives Infinity
    except OverflowError:
        raise UnsafeJSON("malformed") from None
    return value


def nests_deeper_than(text: str, max_depth: int) -> bool:
    """Whether arrays and objects in JSON `text` nest deeper than `max_depth`, found without
    recursing: each pass deletes the innermost `[]` and `{}` pairs (outside strings), so what
    is left after `max_depth` passes was nested deeper (or never balanced: malformed anyway)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False
    brackets = _NOT_BRACKETS.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = brackets.replace("[]", "").replace("{}", "")
    return bool(brackets)


def _strings_are_clean(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if has_forbidden_characters(item):
                return False
        elif isinstance(item, dict):
            if any(has_forbidden_characters(key) for key in item):
                return False
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return True


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Decode UTF-8 JSON strictly; `UnsafeJSON` for anything a browser or database refuses."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes | bytearray) else raw
    except UnicodeDecodeError:  # includes UTF-8-encoded surrogates (strict codec)
        raise UnsafeJSON("malformed") from None
    if nests_deeper_than(text, max_depth):
        raise UnsafeJSON("malformed")
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_finite_int,
        )
    except UnsafeJSON:
        raise
    except (ValueError, RecursionError):  # RecursionError: belt and braces for the depth scan
        raise UnsafeJSON("malformed") from None
    # NUL and lone surrogates inside strings can only arrive as \u escapes.
    if _RISKY_ESCAPE.search(text) and not _strings_are_clean(value):
        raise UnsafeJSON("characters")
    return value


def dumps(value: Any, **options: Any) -> str:
    """`json.dumps` that raises `ValueError` instead of writing NaN or Infinity."""
    return json.dumps(value, allow_nan=False, **options)


def _non_finite(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None (rows stored before `loads` refused
    them would otherwise fail every answer that includes them)."""
    if not _non_finite(value):
        return value
    return json.loads(json.dumps(value), parse_constant=lambda _: None)
