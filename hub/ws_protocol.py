"""uvicorn's WebSocket protocol, made to free a socket without the collector once it is lost.

Why. uvicorn serves each WebSocket through websockets' sans-I/O `ServerProtocol`, whose parser
is a generator that holds the protocol (`self`): every socket is a reference cycle that only a
collection can free. The collector policy (infra/gc_policy.py) freezes idle sockets, and a
frozen cycle is never collected, so every socket that came and went left its `ServerProtocol`
behind with its reader, parser generators, close frame and id (10 objects; measured by a type
histogram of the tracked and frozen objects after churn, tests/test_gc_policy.py). uvicorn
never ends the parser (it does not pass the end of the stream on), so this does, when the
connection is lost: a closed generator drops its frame, the cycle with it, and reference
counting frees the rest.

It also offers the app a shorter way out for text frames (`WRITE_NOW`, in the scope's
extensions): the frame written straight to the transport when the socket is open and not
backed up. An ASGI `websocket.send` goes through every middleware's `send` wrapper, an event
wait, websockets' frame object and its output buffer: about 30 µs a frame, a sixth of the
hub's CPU when it delivers thousands of notifications a second. A server's frames are not
masked, so the bytes are the same for any socket. Anything else (a backed-up or closing socket,
compression) answers False and the caller takes the ordinary path, which waits or raises as
ASGI says.

It is the class uvicorn's `ws="auto"` picks when websockets is installed (as the hub requires),
so nothing else changes; `hub.cli` hands it to uvicorn (`Config(ws=…)`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.protocol import State

# scope["extensions"][WRITE_NOW]: write one text frame now if the socket can take it.
WRITE_NOW = "hub.websocket.write_now"

WriteNow = Callable[[bytes], bool]


@functools.lru_cache(maxsize=16)  # a ping tick writes the same frame to a slice of sockets
def text_frame(text: str) -> bytes:
    """`text` as one final, unmasked WebSocket text frame (RFC 6455 §5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return bytes((0x81, size)) + payload
    if size < 1 << 16:
        return bytes((0x81, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x81, 127)) + size.to_bytes(8, "big") + payload


class CycleFreeWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: object) -> None:
        super().handle_connect(event)  # type: ignore[arg-type]
        scope = getattr(self, "scope", None)  # none when the handshake was refused
        if scope is not None:
            # A bound method in the scope is a reference cycle; `connection_lost` breaks it.
            scope["extensions"][WRITE_NOW] = self.write_now

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete:
            # uvicorn keeps the handshake's request and response (their headers: 2 KB a socket)
            # for the socket's life, and never reads them again once the handshake is done.
            self.request = self.response = None  # type: ignore[assignment]

    def write_now(self, frame: bytes) -> bool:
        """Write an already framed text frame (`text_frame`) if the socket is open, its
        transport is not backed up and no extension rewrites frames; False writes nothing."""
        if (
            not self.writable.is_set()
            or self.disconnected
            or self.close_sent
            or not self.handshake_complete
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
            or self.conn.extensions
        ):
            return False
        try:
            self.transport.write(frame)
        except Exception:  # the ordinary path answers it as ASGI says
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # Nothing is received after this: the parser is done either way.
        self.conn.parser.close()
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"].pop(WRITE_NOW, None)
