"""`GET /cable?token=…`: the ActionCable protocol (`actioncable-v1-json`) over one WebSocket.

Connect: the access token is checked before anything else; a browser origin the token's
product does not allow is refused at the upgrade (403); a bad, expired, revoked or non-access
token gets `{"type":"disconnect","reason":"unauthorized","reconnect":false}` and a close.

Then `welcome`, pings every 3 s, and the client's `subscribe` / `unsubscribe` / `message`
commands. Bad frames (not JSON, unknown command or identifier, oversized) are counted and
ignored; a connection that keeps sending them is closed with `invalid_request`. Nothing one
connection sends can reach another connection's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from auth.service import Auth
from channels import CHANNELS
from channels.base import Channel
from hub.cable.connection import CableConnection, disconnect_frame
from hub.cable.registry import CableRegistry, Recover
from hub.errors import HubError

logger = logging.getLogger("hub.cable")

PROTOCOL = "actioncable-v1-json"
MAX_FRAME_BYTES = 64 * 1024
MAX_INVALID_COMMANDS = 20
SEND_QUEUE_FRAMES = 256


class CableHost:
    """The per-connection side of the protocol: commands in, frames out (a `ChannelHost`)."""

    def __init__(self, registry: CableRegistry, connection: CableConnection) -> None:
        self.registry = registry
        self.connection = connection

    # ChannelHost ---------------------------------------------------------------------------

    async def stream_from(self, channel: Channel, stream: str, recover: Recover | None) -> None:
        await self.registry.join(stream, self.connection, channel.identifier, recover)

    def transmit(self, channel: Channel, message: Any) -> None:
        frame = json.dumps({"identifier": channel.identifier, "message": message})
        self.connection.send(frame)

    # commands ------------------------------------------------------------------------------

    def _answer(self, identifier: str, kind: str) -> None:
        self.connection.send(json.dumps({"identifier": identifier, "type": kind}))

    def invalid(self, why: str) -> None:
        connection = self.connection
        connection.invalid_commands += 1
        logger.debug("invalid cable command from user %s: %s", connection.user_id, why)
        if connection.invalid_commands >= MAX_INVALID_COMMANDS:
            connection.disconnect("invalid_request", reconnect=False)

    async def handle(self, text: str) -> None:
        if len(text) > MAX_FRAME_BYTES:
            self.invalid("oversized frame")
            return
        command = _json(text)
        if command is None:
            self.invalid("not JSON")
            return
        if not isinstance(command, dict) or not isinstance(command.get("identifier"), str):
            self.invalid("no identifier")
            return
        kind, identifier = command.get("command"), command["identifier"]
        if kind == "subscribe":
            await self.subscribe(identifier)
        elif kind == "unsubscribe":
            await self.unsubscribe(identifier)
        elif kind == "message":
            await self.message(identifier, command.get("data"))
        else:
            self.invalid("unknown command")

    async def subscribe(self, identifier: str) -> None:
        subscriptions = self.connection.subscriptions
        if identifier in subscriptions:
            # The JS client retries subscribe until confirmed: confirm again, change nothing.
            self._answer(identifier, "confirm_subscription")
            return
        params = _json(identifier)
        name = params.get("channel") if isinstance(params, dict) else None
        channel_class = CHANNELS.get(name) if isinstance(name, str) else None
        if channel_class is None:
            self._answer(identifier, "reject_subscription")
            return
        channel = channel_class(self, self.connection, identifier, params)
        subscriptions[identifier] = channel
        try:
            await channel.subscribed()
        except Exception:
            logger.exception("%s.subscribed failed", channel_class.name)
            channel.reject()
        if channel.rejected:
            await self._drop(identifier)
            self._answer(identifier, "reject_subscription")
            return
        self._answer(identifier, "confirm_subscription")

    async def unsubscribe(self, identifier: str) -> None:
        if identifier not in self.connection.subscriptions:
            self.invalid("unsubscribe from an unknown identifier")
            return
        await self._drop(identifier)

    async def _drop(self, identifier: str) -> None:
        channel = self.connection.subscriptions.pop(identifier)
        for stream in channel.streams:
            await self.registry.leave(stream, self.connection, identifier)
        with contextlib.suppress(Exception):
            await channel.unsubscribed()

    async def message(self, identifier: str, data: Any) -> None:
        channel = self.connection.subscriptions.get(identifier)
        if channel is None:
            self.invalid("message for an unknown identifier")
            return
        payload = _json(data) if isinstance(data, str) else None
        action = payload.get("action") if isinstance(payload, dict) else None
        if not isinstance(action, str):
            self.invalid("message without an action")
            return
        try:
            if not await channel.perform(action, payload):
                self.invalid(f"unknown action {action[:40]!r}")
        except HubError as exc:
            self.invalid(f"{action[:40]}: {exc.code}")

    async def close(self) -> None:
        for identifier in list(self.connection.subscriptions):
            await self._drop(identifier)


def _json(text: str) -> Any:
    """Parsed JSON, or None for anything that is not (deep nesting included)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _offered_protocols(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


async def _refuse(websocket: WebSocket, subprotocol: str | None) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await websocket.send_text(disconnect_frame("unauthorized", False))
    await websocket.close(code=1008)


async def cable(websocket: WebSocket) -> None:
    app = websocket.app
    auth: Auth = app.state.auth
    registry: CableRegistry = app.state.cable
    subprotocol = PROTOCOL if PROTOCOL in _offered_protocols(websocket) else None
    try:
        claims, product = await auth.authenticate_access(websocket.query_params.get("token", ""))
    except HubError:
        await _refuse(websocket, subprotocol)
        return
    origin = websocket.headers.get("origin")
    if origin is not None and not product.allows_origin(origin):
        await websocket.close(code=1008)  # before accept: the upgrade is answered 403
        return
    try:
        ctx = await auth.access_context(claims, product)
    except HubError:
        await _refuse(websocket, subprotocol)
        return

    await websocket.accept(subprotocol=subprotocol)
    connection = CableConnection(
        websocket,
        user_id=ctx.user.id,
        product_id=product.id,
        env=ctx.env,
        session_id=str(claims["sid"]),
        locale=ctx.user.locale or product.default_locale,
        expires_at=float(claims["exp"]),
        services={"notifications": app.state.notifications},
        max_queue=SEND_QUEUE_FRAMES,
    )
    host = CableHost(registry, connection)
    registry.add(connection)
    writer = asyncio.create_task(connection.write_loop())
    connection.send('{"type":"welcome"}')
    reader = asyncio.create_task(_read_loop(websocket, host))
    try:
        # Ends when the client leaves (reader) or the hub drops the client (writer finished
        # sending its disconnect frame).
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        registry.remove(connection)
        await host.close()
        if not writer.done():
            connection.disconnect("remote", reconnect=True)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, timeout=1)
            writer.cancel()
        await connection.close()


async def _read_loop(websocket: WebSocket, host: CableHost) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while not host.connection.closing:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                host.invalid("binary frame")
                continue
            try:
                await host.handle(text)
            except Exception:
                # A bug must cost the offending frame, not the connection.
                logger.exception("cable command failed")
                host.invalid("command failed")


routes = [WebSocketRoute("/cable", cable)]
