"""python-socketio peer: one room per user, AsyncRedisManager on Redis.

- `ws://…/socket.io/?EIO=4&transport=websocket`, then the Socket.IO connect packet
  `40{"token": "<token>"}`: the connect handler checks the bench's HMAC token and enters the
  room `user_<id>`; the client's subscription is confirmed by the connect ack `40{"sid": …}`;
- `POST /publish` `{"items": [{"user_id": 1, "payload": {...}}, ...]}`: the server-side path,
  one `sio.emit("notification", payload, room="user_<id>")` per item;
- `GET /healthz`.

Run by the bench as one uvicorn process: `uvicorn server:app --app-dir bench/peers/socketio`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from peerkit import parse_batch, settings_from_env, verify
from socketio.exceptions import ConnectionRefusedError

SECRET, REDIS_URL, REDIS_PREFIX = settings_from_env()

sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=socketio.AsyncRedisManager(REDIS_URL, channel=REDIS_PREFIX),
    cors_allowed_origins=[],
    logger=False,
    engineio_logger=False,
)


def room_of(user_id: int) -> str:
    return f"user_{user_id}"


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
    token = auth.get("token") if isinstance(auth, dict) else None
    user_id = verify(SECRET, token)
    if user_id is None:
        raise ConnectionRefusedError("unauthorized")
    await sio.enter_room(sid, room_of(user_id))


Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def http_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Plain HTTP next to Socket.IO: the publish endpoint and a health check."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/healthz":
        await _respond(send, 200, {"status": "ok"})
    elif scope["path"] == "/publish" and scope["method"] == "POST":
        items = parse_batch(await _read_body(receive))
        for user_id, payload in items:
            await sio.emit("notification", payload, room=room_of(user_id))
        await _respond(send, 200, {"count": len(items)})
    else:
        await _respond(send, 404, {"error": "not found"})


app = socketio.ASGIApp(sio, other_asgi_app=http_app)
