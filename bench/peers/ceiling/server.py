"""The ceiling: the least a per-user notification server on Redis pub/sub can do.

What the hub is measured against: a hand-rolled Starlette app with no persistence, no
protocol on top of plain JSON frames, and nothing per socket but the socket itself.

- `ws://…/ws/?token=<token>`: the bench's HMAC token (peerkit), then the user's Redis channel
  `<prefix>:user:<id>` is subscribed (on the process's one pub/sub connection, shared by every
  socket) and `{"type": "subscribed"}` is sent once Redis has confirmed it;
- each pub/sub message is already the socket's frame (encoded once, by the publisher) and goes
  as it is to every socket of its channel (a channel → sockets map);
- `POST /publish` `{"items": [{"user_id": 1, "payload": {...}}, ...]}`: one PUBLISH per item,
  all of a request's in one pipelined round trip;
- `GET /healthz`.

Run by the bench as one uvicorn process: `uvicorn server:app --app-dir bench/peers/ceiling`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as redis
from peerkit import parse_batch, settings_from_env, verify
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

SECRET, REDIS_URL, REDIS_PREFIX = settings_from_env()
SUBSCRIBED = json.dumps({"type": "subscribed"})


def channel_of(user_id: int) -> bytes:
    return f"{REDIS_PREFIX}:user:{user_id}".encode()


class Fanout:
    """One pub/sub connection for the process; channel → the sockets subscribed to it."""

    def __init__(self, url: str) -> None:
        self.redis = redis.Redis.from_url(url)
        self.pubsub = self.redis.pubsub()
        self.sockets: dict[bytes, set[WebSocket]] = {}
        self.confirmed: dict[bytes, asyncio.Future[None]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # redis-py's PubSub reads nothing until something is subscribed: a placeholder channel
        await self.pubsub.subscribe(f"{REDIS_PREFIX}:ceiling")
        self.reader = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.pubsub.aclose()
        await self.redis.aclose()

    async def _read(self) -> None:
        while True:
            message = await self.pubsub.get_message(timeout=None)
            if message is None:
                continue
            channel = message["channel"]
            if message["type"] == "message":
                frame = message["data"].decode()
                for ws in self.sockets.get(channel, ()):
                    with contextlib.suppress(Exception):  # a socket closing: its own task cleans up
                        await ws.send_text(frame)
            elif message["type"] == "subscribe":
                waiter = self.confirmed.pop(channel, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)

    async def add(self, channel: bytes, ws: WebSocket) -> None:
        """Deliver `channel` to `ws`; returns once Redis has confirmed the subscription."""
        sockets = self.sockets.get(channel)
        if sockets is not None:
            sockets.add(ws)
            waiter = self.confirmed.get(channel)
            if waiter is not None:
                await asyncio.shield(waiter)
            return
        self.sockets[channel] = {ws}
        waiter = asyncio.get_running_loop().create_future()
        self.confirmed[channel] = waiter
        await self.pubsub.subscribe(channel)
        await asyncio.shield(waiter)

    async def remove(self, channel: bytes, ws: WebSocket) -> None:
        sockets = self.sockets.get(channel)
        if sockets is None:
            return
        sockets.discard(ws)
        if not sockets:
            del self.sockets[channel]
            await self.pubsub.unsubscribe(channel)


fanout = Fanout(REDIS_URL)


async def notifications(ws: WebSocket) -> None:
    user_id = verify(SECRET, ws.query_params.get("token"))
    if user_id is None:
        await ws.close(code=4401)
        return
    await ws.accept()
    channel = channel_of(user_id)
    try:
        await fanout.add(channel, ws)
        await ws.send_text(SUBSCRIBED)
        while True:  # nothing is expected from the client; this only waits for it to leave
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
    except WebSocketDisconnect:
        return
    finally:
        await fanout.remove(channel, ws)


async def publish(request: Request) -> JSONResponse:
    items = parse_batch(await request.body())
    async with fanout.redis.pipeline(transaction=False) as pipe:
        for user_id, payload in items:
            pipe.publish(channel_of(user_id), _frame(payload))
        await pipe.execute()
    return JSONResponse({"count": len(items)})


def _frame(payload: Any) -> str:
    return json.dumps({"type": "notification", "notification": payload})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await fanout.start()
    yield
    await fanout.stop()


app = Starlette(
    routes=[
        Route("/publish", publish, methods=["POST"]),
        Route("/healthz", healthz),
        WebSocketRoute("/ws/", notifications),
    ],
    lifespan=lifespan,
)
