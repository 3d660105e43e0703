"""`GET /cable?token=…`: the ActionCable protocol (`actioncable-v1-json`) over one WebSocket.

Connect: the access token is checked before anything else; a browser origin the token's
product does not allow is refused at the upgrade (403 with the `{"error": …}` body, through the
ASGI WebSocket denial response where the server offers it); a bad, expired, revoked or non-access
token gets `{"type":"disconnect","reason":"unauthorized","reconnect":false}` and a close.
A user over the socket limit (`CableLimits`) is refused the same way with `invalid_request`.

Then `welcome`, pings every 3 s (the node's), and the client's commands, one at a time (the
host's, `hub.cable.host`). The endpoint is built in `create_app` with everything it uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Mapping

from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from auth.transport import USER_TOKEN
from channels.base import ChannelFactory
from hub.cable.bucket import TokenBucket
from hub.cable.connection import CableConnection
from hub.cable.host import CableHost
from hub.cable.node import CableNode
from hub.cable.protocol import PROTOCOL, WELCOME, DisconnectReason
from infra.errors import HubError, error_response
from infra.metrics import CABLE_SOCKETS_REFUSED
from infra.settings import CableLimits

logger = logging.getLogger("hub.cable")

SEND_QUEUE_FRAMES = 256
CABLE_PATH = "/cable"


def _offered_protocols(websocket: WebSocket) -> list[str]:
    header = websocket.headers.get("sec-websocket-protocol", "")
    return [p.strip() for p in header.split(",") if p.strip()]


async def _refuse(websocket: WebSocket, subprotocol: str | None) -> None:
    await websocket.accept(subprotocol=subprotocol)
    await _send_last(websocket, DisconnectReason.UNAUTHORIZED)


async def _deny(websocket: WebSocket, exc: HubError) -> None:
    """Refuse the upgrade itself: the error shape over HTTP where the server can send it
    (uvicorn's `websocket.http.response` extension), else a bare 403 (close before accept)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        # `error_response` reads only state, query and headers, which a WebSocket has too.
        await websocket.send_denial_response(error_response(websocket, exc))  # type: ignore[arg-type]
    else:
        await websocket.close(code=1008)


async def _send_last(websocket: WebSocket, reason: DisconnectReason) -> None:
    """Tell an accepted socket `reason` (one that does not reconnect) and close it."""
    await websocket.send_text(reason.frame)
    await websocket.close(code=1008)


class CableEndpoint:
    """The `/cable` WebSocket handler, built with its collaborators (see `routes`)."""

    def __init__(
        self,
        *,
        node: CableNode,
        channels: Mapping[str, ChannelFactory],
        limits: CableLimits,
    ) -> None:
        self.node = node
        self.channels = channels
        self.limits = limits

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The route's ASGI app. Starlette would wrap a function endpoint in a session
        wrapper and a second exception-handling layer (the app's middleware has one already),
        whose coroutines and closures would live as long as each socket and sit on every
        frame's way out; this returns `serve`'s coroutine itself, so no frame of its own
        stays either."""
        return self.serve(WebSocket(scope, receive=receive, send=send))

    async def serve(self, websocket: WebSocket) -> None:
        subprotocol = PROTOCOL if PROTOCOL in _offered_protocols(websocket) else None
        try:
            ctx = await USER_TOKEN(websocket)  # the `token` query parameter, as on every route
        except HubError as exc:
            if exc.status == 403:  # a browser origin the token's product does not allow
                await _deny(websocket, exc)
            else:
                await _refuse(websocket, subprotocol)
            return
        claims, product = ctx.claims, ctx.product

        await websocket.accept(subprotocol=subprotocol)
        connection = CableConnection(
            websocket,
            user_id=ctx.user.id,
            product_id=product.id,
            env=ctx.env,
            session_id=str(claims["sid"]),
            locale=ctx.user.locale or product.default_locale,
            expires_at=float(claims["exp"]),
            max_queue=SEND_QUEUE_FRAMES,
            actions=TokenBucket(self.limits.actions_per_second, self.limits.action_burst),
        )
        await self.session(connection)

    async def session(self, connection: CableConnection) -> None:
        """Serve an accepted, authenticated socket until either side ends it."""
        websocket, node = connection.websocket, self.node
        if not await node.add(connection, self.limits.max_sockets_per_user):
            # Refused rather than closing an older tab: no tab ever pushes another out, so
            # tabs cannot take turns reconnecting; reconnect=false stops the JS client retrying.
            CABLE_SOCKETS_REFUSED.inc()
            logger.info("user %s is over the cable's socket limit", connection.user_id)
            await _send_last(websocket, DisconnectReason.INVALID_REQUEST)
            return
        host = CableHost(node.registry, connection, self.limits, self.channels)
        # This task reads the socket itself (no reader or writer task per socket): the hub
        # ending the socket (its disconnect frame went out, or a write failed) cancels it.
        connection.reader = asyncio.current_task()
        connection.send(WELCOME)
        try:
            await _read_loop(websocket, host)
        except asyncio.CancelledError:
            # Only the connection's own cancel is absorbed; anyone else's goes on.
            task = asyncio.current_task()
            if not connection.reader_stopped or (task is not None and task.uncancel() > 0):
                raise
        finally:
            connection.reader = None  # no cancel may land in the clean-up below
            await node.remove(connection)
            await host.close()
            if not connection.closing:  # the client left: say so, if the socket still takes it
                connection.disconnect(DisconnectReason.REMOTE)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), timeout=1)
            connection.stop_writing()
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


def routes(endpoint: CableEndpoint) -> list[WebSocketRoute]:
    return [WebSocketRoute(CABLE_PATH, endpoint)]  # an ASGI app: see `CableEndpoint.__call__`
