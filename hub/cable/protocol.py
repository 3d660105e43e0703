"""The cable's wire protocol in one place: every frame the hub sends, every command a client
sends, the disconnect reasons, and the control messages hub processes send each other.

Nothing here does I/O: each function turns values into text or text into values, so a change
to the protocol is read and tested in this file alone (tests/test_cable_protocol.py).

JSON in: Python's `json` accepts what browsers never send and what hurts further down — `NaN`
and `Infinity` (also spelled `1e999`), lone surrogates (`"\\ud800"`, which no database or
UTF-8 encoder takes), NUL characters (PostgreSQL text refuses them), and nesting deep enough
to exhaust the interpreter's recursion. `decode` refuses all of them with one `FrameError`,
by `infra.jsonsafe`'s rules (the same as for HTTP bodies) with a lower nesting limit.

JSON out: `JSON.parse` in a browser cannot read a bare `NaN`, so every frame is encoded with
`allow_nan=False`; a non-finite number that slipped into stored data goes out as `null`
instead of poisoning the frame (or the socket).
"""

from __future__ import annotations

import enum
import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

from infra import jsonsafe

logger = logging.getLogger("hub.cable")

PROTOCOL = "actioncable-v1-json"
# ActionCable frames, identifiers and action data are flat objects; 16 levels is plenty.
MAX_DEPTH = 16
# A bigger command is not read (it counts as a bad frame).
MAX_FRAME_BYTES = 64 * 1024


class FrameError(ValueError):
    """Text that is not an acceptable command; the message says why (for debug logs only)."""


# -- JSON ----------------------------------------------------------------------------------


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


# -- frames the hub sends ------------------------------------------------------------------


class DisconnectReason(enum.Enum):
    """Why the hub ends a socket, and whether the client should come back (`reconnect`).

    Each member's value is its wire string; its frame is encoded once, at import."""

    # The token is bad or its session was revoked: retrying with it cannot help.
    UNAUTHORIZED = ("unauthorized", False)
    # Too many bad frames, or over the user's socket limit: a retry would be refused too.
    INVALID_REQUEST = ("invalid_request", False)
    # The access token ran out: reconnect with a fresh one.
    TOKEN_EXPIRED = ("token_expired", True)
    # The process is shutting down: another one takes the socket.
    SERVER_RESTART = ("server_restart", True)
    # The send queue filled (the client stopped reading).
    TOO_SLOW = ("too_slow", True)
    # The socket ended while frames were still queued.
    REMOTE = ("remote", True)

    def __init__(self, wire: str, reconnect: bool) -> None:
        self.wire = wire
        self.reconnect = reconnect
        self.frame = encode({"type": "disconnect", "reason": wire, "reconnect": reconnect})


WELCOME = encode({"type": "welcome"})


class PingFrames:
    """The ping frame of the current second, encoded once and reused by every socket."""

    __slots__ = ("_frame", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._frame = ""

    def at(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second, self._frame = second, encode({"type": "ping", "message": second})
        return self._frame


def confirm_subscription(identifier: str) -> str:
    return encode({"identifier": identifier, "type": "confirm_subscription"})


def reject_subscription(identifier: str) -> str:
    return encode({"identifier": identifier, "type": "reject_subscription"})


def transmission(identifier: str, message: Any, *, as_json_string: bool) -> str:
    """A channel's answer to its own subscription: `message` as a JSON value, or as a JSON
    string when the channel asks for it (what the Kiket seed's client reads)."""
    if as_json_string:
        message = encode(message)
    return encode({"identifier": identifier, "message": message})


def broadcast_frame(identifier: str, payload: str) -> str:
    """A stream's message for one identifier: the payload (already JSON text) travels as a
    JSON string. Built once per (stream, identifier) and queued on every subscriber."""
    return f'{{"identifier":{json.dumps(identifier)},"message":{json.dumps(payload)}}}'


# -- commands the client sends -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """One client command: `subscribe`, `unsubscribe` or `message` on an identifier."""

    kind: Literal["subscribe", "unsubscribe", "message"]
    identifier: str
    data: Any = None


_KINDS = frozenset({"subscribe", "unsubscribe", "message"})


def parse_command(text: str) -> Command:
    """The client's `{"command", "identifier", "data"}`; FrameError for anything else."""
    if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "replace")) > MAX_FRAME_BYTES:
        raise FrameError("oversized frame")
    command = decode(text)
    if not isinstance(command, dict) or not isinstance(command.get("identifier"), str):
        raise FrameError("no identifier")
    kind = command.get("command")
    if not isinstance(kind, str) or kind not in _KINDS:  # a list or an object is unhashable
        raise FrameError("unknown command")
    return Command(kind, command["identifier"], command.get("data"))


def parse_identifier(identifier: str) -> tuple[str, dict[str, Any]] | None:
    """(channel name, params) of a subscription identifier; None if it names no channel."""
    params = _json_or_none(identifier)
    name = params.get("channel") if isinstance(params, dict) else None
    return (name, params) if isinstance(name, str) else None


def parse_action(data: Any) -> tuple[str, dict[str, Any]]:
    """(action, payload) of a `message` command's data (a JSON string holding an object with
    an `action`); FrameError for anything else."""
    payload = _json_or_none(data) if isinstance(data, str) else None
    action = payload.get("action") if isinstance(payload, dict) else None
    if not isinstance(action, str):
        raise FrameError("message without an action")
    return action, payload


def _json_or_none(text: str) -> Any:
    try:
        return decode(text)
    except FrameError:
        return None


# -- control messages between hub processes ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionsRevoked:
    """These sessions were revoked: every process disconnects their sockets."""

    session_ids: frozenset[str]


@dataclass(frozen=True, slots=True)
class RecoverGap:
    """A publish failed from `since` (Unix time) on: every process recovers from SQL."""

    since: float


@dataclass(frozen=True, slots=True)
class ProductChanged:
    """A product or one of its keys changed: every process drops what it cached of it."""

    product_id: int


Control = SessionsRevoked | RecoverGap | ProductChanged


def encode_control(message: Control) -> str:
    if isinstance(message, SessionsRevoked):
        return encode({"type": "sessions_revoked", "sids": sorted(message.session_ids)})
    if isinstance(message, ProductChanged):
        return encode({"type": "product_changed", "product": message.product_id})
    return encode({"type": "recover", "since": message.since})


def decode_control(raw: str) -> Control:
    """The control message in `raw`; FrameError if it is not one this hub knows."""
    message = decode(raw)
    kind = message.get("type") if isinstance(message, dict) else None
    if kind == "sessions_revoked":
        sids = message.get("sids", ())
        if isinstance(sids, list) and all(isinstance(sid, str) for sid in sids):
            return SessionsRevoked(frozenset(sids))
    elif kind == "recover":
        since = message.get("since")
        if isinstance(since, int | float) and not isinstance(since, bool) and math.isfinite(since):
            return RecoverGap(float(since))
    elif kind == "product_changed":
        product = message.get("product")
        if isinstance(product, int) and not isinstance(product, bool):
            return ProductChanged(product)
    raise FrameError(f"not a control message: {str(kind)[:40]}")


def recover_notice(since: float) -> str:
    """The broker's `gap_notice`: the control message asking every process to recover."""
    return encode_control(RecoverGap(since))
