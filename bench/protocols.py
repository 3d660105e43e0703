"""The load client's protocol adapters: one small class per WebSocket dialect.

The client code is the same for every system; only these adapters differ. Each one knows the
URL to open, the handshake that ends with the user subscribed to their own notifications, and
how to pick the notification's `data` object (with the bench's `sent_at`, `seq` and `step`)
out of a server frame. Everything else (pings, acks) is answered or ignored here.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any, ClassVar
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection

Data = dict[str, Any]


class HandshakeError(RuntimeError):
    """The server refused the connection or the subscription."""


def _text(frame: str | bytes) -> str:
    return frame if isinstance(frame, str) else frame.decode()


class Protocol(ABC):
    name: ClassVar[str]
    subprotocols: ClassVar[tuple[str, ...] | None] = None

    @abstractmethod
    def url(self, base: str, token: str) -> str:
        """The WebSocket URL for a user with `token` (`base` is ws://host:port)."""

    @abstractmethod
    async def subscribe(self, ws: ClientConnection, token: str) -> None:
        """Complete the handshake: return once the user's notifications are subscribed."""

    @abstractmethod
    def on_frame(self, frame: str | bytes) -> tuple[str | None, Data | None]:
        """(a reply to send or None, the notification's `data` or None) for one frame."""


class ActionCable(Protocol):
    """notification-hub: ActionCable JSON, NotificationsChannel, `message` is a JSON string."""

    name = "actioncable"
    subprotocols = ("actioncable-v1-json",)
    identifier = json.dumps({"channel": "NotificationsChannel"})

    def url(self, base: str, token: str) -> str:
        return f"{base}/cable?token={quote(token)}"

    async def subscribe(self, ws: ClientConnection, token: str) -> None:
        subscribed = False
        async for frame in ws:
            message = json.loads(frame)
            kind = message.get("type")
            if kind == "welcome" and not subscribed:
                command = {"command": "subscribe", "identifier": self.identifier}
                await ws.send(json.dumps(command))
                subscribed = True
            elif kind == "confirm_subscription":
                return
            elif kind in ("reject_subscription", "disconnect"):
                raise HandshakeError(f"hub answered {message}")
        raise HandshakeError("connection closed during the handshake")

    def on_frame(self, frame: str | bytes) -> tuple[str | None, Data | None]:
        text = _text(frame)
        if text.startswith('{"type":"ping"'):
            return None, None
        message = json.loads(text).get("message")
        if isinstance(message, str):
            message = json.loads(message)
        if isinstance(message, dict) and message.get("action") == "new_notification":
            return None, message["notification"].get("data")
        return None, None


class SocketIO(Protocol):
    """python-socketio: Engine.IO v4 / Socket.IO v5 text packets on the websocket transport."""

    name = "socketio"

    def url(self, base: str, token: str) -> str:
        return f"{base}/socket.io/?EIO=4&transport=websocket"

    async def subscribe(self, ws: ClientConnection, token: str) -> None:
        async for frame in ws:
            text = _text(frame)
            if text.startswith("0"):  # Engine.IO open: connect to the default namespace
                await ws.send("40" + json.dumps({"token": token}))
            elif text == "2":  # Engine.IO ping
                await ws.send("3")
            elif text.startswith("40"):  # Socket.IO connect ack: the room is joined
                return
            elif text.startswith("44"):  # Socket.IO connect error
                raise HandshakeError(f"socket.io refused: {text[2:]}")
        raise HandshakeError("connection closed during the handshake")

    def on_frame(self, frame: str | bytes) -> tuple[str | None, Data | None]:
        text = _text(frame)
        if text == "2":
            return "3", None
        if text.startswith("42"):
            event, *args = json.loads(text[2:])
            if event == "notification" and args:
                return None, args[0].get("data")
        return None, None


class PlainJSON(Protocol):
    """Django Channels peer: plain JSON frames, `{"type": "notification", "notification": …}`."""

    name = "json"

    def url(self, base: str, token: str) -> str:
        return f"{base}/ws/?token={quote(token)}"

    async def subscribe(self, ws: ClientConnection, token: str) -> None:
        async for frame in ws:
            if json.loads(frame).get("type") == "subscribed":
                return
        raise HandshakeError("connection closed during the handshake")

    def on_frame(self, frame: str | bytes) -> tuple[str | None, Data | None]:
        message = json.loads(frame)
        if message.get("type") == "notification":
            return None, message["notification"].get("data")
        return None, None


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (ActionCable(), SocketIO(), PlainJSON())}
