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

It is the class uvicorn's `ws="auto"` picks when websockets is installed (as the hub requires),
so nothing else changes; `hub.cli` hands it to uvicorn (`Config(ws=…)`).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class CycleFreeWebSocketProtocol(WebSocketsSansIOProtocol):
    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # Nothing is received after this: the parser is done either way.
        self.conn.parser.close()
