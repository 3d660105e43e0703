"""`GET /cable?token=…`: the ActionCable protocol (`actioncable-v1-json`) over one WebSocket.

Connect: the access token is checked before anything else; a browser origin the token's
product does not allow is refused at the upgrade (403); a bad, expired, revoked or non-access
token gets `{"type":"disconnect","reason":"unauthorized","reconnect":false}` and a close.

Then `welcome`, pings every 3 s, and the client's `subscribe` / `unsubscribe` / `message`
commands. Bad frames (not strict JSON — see `protocol` —, unknown command or identifier,
oversized) are counted and ignored; a connection that keeps sending them is closed with
`invalid_request`. Nothing one connection sends can reach another connection's state.

Every client's share is bounded (`CableLimits`): sockets per user (the next one is refused
with `invalid_request`), subscriptions per socket and identifier size (over them:
`reject_subscription`, counted like a bad frame), and actions per socket (a token bucket:
an action over the rate is dropped and answered, at most once a second, with the channel's
`{"action":"error","for":…,"code":"rate_limited"}`, and the socket's reader pauses for one
token's time, so a flood is read at about twice the action rate). New
subscriptions and unsubscribes draw on the same bucket but are never dropped (the JS client
needs their answer): the reader waits for their token instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from auth.transport import USER_TOKEN
from channels import CHANNELS
from channels.base import Channel
from hub.cable.bucket import TokenBucket
from hub.cable.connection import CableConnection, disconnect_frame
from hub.cable.protocol import FrameError, decode, encode
from hub.cable.registry import CableRegistry, Recover
from hub.services import services
from infra.errors import HubError
from infra.metrics import CABLE_ACTIONS_RATE_LIMITED, CABLE_SOCKETS_REFUSED
from infra.settings import CableLimits

logger = logging.getLogger("hub.cable")

PROTOCOL = "actioncable-v1-json"
MAX_FRAME_BYTES = 64 * 1024
MAX_INVALID_COMMANDS = 20
# A flooding socket hears `rate_limited` at most this often.
RATE_LIMIT_NOTICE_SECONDS = 1.0
SEND_QUEUE_FRAMES = 256


class CableHost:
    """The per-connection side of the protocol: commands in, frames out (a `ChannelHost`)."""

    def __init__(
        self, registry: CableRegistry, connection: CableConnection, limits: CableLimits
    ) -> None:
        self.registry = registry
        self.connection = connection
        self.limits = limits

    # ChannelHost ---------------------------------------------------------------------------

    async def stream_from(self, channel: Channel, stream: str, recover: Recover | None) -> None:
        await self.registry.join(stream, self.connection, channel.identifier, recover)

    def transmit(self, channel: Channel, message: Any) -> None:
        if channel.message_as_json_string:
            message = encode(message)
        self.connection.send(encode({"identifier": channel.identifier, "message": message}))

    # commands ------------------------------------------------------------------------------

    def _answer(self, identifier: str, kind: str) -> None:
        self.connection.send(encode({"identifier": identifier, "type": kind}))

    def invalid(self, why: str) -> None:
        connection = self.connection
        connection.invalid_commands += 1
        logger.debug("invalid cable command from user %s: %s", connection.user_id, why)
        if connection.invalid_commands >= MAX_INVALID_COMMANDS:
            connection.disconnect("invalid_request", reconnect=False)

    async def handle(self, text: str) -> None:
        if len(text) > MAX_FRAME_BYTES or len(text.encode("utf-8", "replace")) > MAX_FRAME_BYTES:
            self.invalid("oversized frame")
            return
        try:
            command = decode(text)
        except FrameError as exc:
            self.invalid(str(exc))
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
        if (
            len(subscriptions) >= self.limits.max_subscriptions
            or len(identifier.encode()) > self.limits.max_identifier_bytes
        ):
            self.invalid("over the subscription limits")
            self._answer(identifier, "reject_subscription")
            return
        params = _params(identifier)
        name = params.get("channel") if isinstance(params, dict) else None
        channel_class = CHANNELS.get(name) if isinstance(name, str) else None
        if channel_class is None:
            self._answer(identifier, "reject_subscription")
            return
        await self._pace()
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
        await self._pace()
        await self._drop(identifier)

    async def _pace(self) -> None:
        """Wait for this socket's next token: subscription churn is slowed, never dropped."""
        delay = self.connection.actions.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

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
        payload = _params(data) if isinstance(data, str) else None
        action = payload.get("action") if isinstance(payload, dict) else None
        if not isinstance(action, str):
            self.invalid("message without an action")
            return
        if not self.connection.actions.take():
            await self._rate_limited(channel, action)
            return
        try:
            if not await channel.perform(action, payload):
                self.invalid(f"unknown action {action[:40]!r}")
        except HubError as exc:
            self.invalid(f"{action[:40]}: {exc.code}")

    async def _rate_limited(self, channel: Channel, action: str) -> None:
        """Drop the action, say so (at most once a second), and pause this socket's reader for
        one token's time: a flood is read at about twice the action rate, not at wire speed
        (the client's sends back up in TCP instead of in the hub's CPU).

        A flood does not end the socket: closing it would make the hub read the flood's whole
        TCP backlog to find the client's close frame (measured: other users' p99 from 60 ms
        to ~1 s), while a throttled socket costs almost nothing."""
        connection = self.connection
        CABLE_ACTIONS_RATE_LIMITED.inc()
        now = time.monotonic()
        if now - connection.rate_limit_told_at >= RATE_LIMIT_NOTICE_SECONDS:
            connection.rate_limit_told_at = now
            channel.transmit_error(action[:40], "rate_limited")
        await asyncio.sleep(1 / connection.actions.rate)

    async def close(self) -> None:
        for identifier in list(self.connection.subscriptions):
            await self._drop(identifier)


def _params(text: str) -> Any:
    """The strict JSON value of an identifier or a message's data; None if it is not one."""
    try:
        return decode(text)
    except FrameError:
        return None


def _offered_protocols(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


async def _refuse(websocket: WebSocket, subprotocol: str | None) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await _send_last(websocket, "unauthorized")


async def _send_last(websocket: WebSocket, reason: str) -> None:
    """Tell an accepted socket `reason` (reconnect: false) and close it."""
    await websocket.send_text(disconnect_frame(reason, False))
    await websocket.close(code=1008)


async def cable(websocket: WebSocket) -> None:
    hub = services(websocket)
    registry: CableRegistry = hub.cable
    subprotocol = PROTOCOL if PROTOCOL in _offered_protocols(websocket) else None
    try:
        ctx = await USER_TOKEN(websocket)  # the `token` query parameter, as on every route
    except HubError as exc:
        if exc.status == 403:  # a browser origin the token's product does not allow
            await websocket.close(code=1008)  # before accept: the upgrade is answered 403
        else:
            await _refuse(websocket, subprotocol)
        return
    claims, product = ctx.claims, ctx.product

    await websocket.accept(subprotocol=subprotocol)
    limits: CableLimits = hub.settings.cable
    connection = CableConnection(
        websocket,
        user_id=ctx.user.id,
        product_id=product.id,
        env=ctx.env,
        session_id=str(claims["sid"]),
        locale=ctx.user.locale or product.default_locale,
        expires_at=float(claims["exp"]),
        services={"notifications": hub.notifications},
        max_queue=SEND_QUEUE_FRAMES,
        actions=TokenBucket(limits.actions_per_second, limits.action_burst),
    )
    if not await registry.add(connection, limits.max_sockets_per_user):
        # Refused rather than closing an older tab: no tab ever pushes another out, so tabs
        # cannot take turns reconnecting; reconnect=false stops the JS client from retrying.
        CABLE_SOCKETS_REFUSED.inc()
        logger.info("user %s is over the cable's socket limit", connection.user_id)
        await _send_last(websocket, "invalid_request")
        return
    host = CableHost(registry, connection, limits)
    writer = asyncio.create_task(connection.write_loop())
    connection.send('{"type":"welcome"}')
    reader = asyncio.create_task(_read_loop(websocket, host))
    try:
        # Ends when the client leaves (reader) or the hub drops the client (writer finished
        # sending its disconnect frame).
        await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        await registry.remove(connection)
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
