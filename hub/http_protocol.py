"""uvicorn's HTTP/1.1 protocol with the front door's limits: a cap on the request head, a
deadline for it, WebSocket upgrade heads checked before they are handed over, and the hub's
error shape for requests refused before the app sees them.

httptools buffers a request's head until it is complete and sets no limit of its own, so a
client that sends megabytes of headers, or never ends them, grows the process's memory for
as long as its connection stays open. Here the bytes of a head that is still incomplete are
counted, and past the cap the client gets 431 and the connection is closed. A head must also
be complete within `head_timeout` seconds of the connection opening (or of the first byte
after the previous request), or the client gets 408 and the connection is closed: otherwise
silent or trickling clients hold file descriptors forever. The same holds for a body: once
its head is in, a request's body must be complete within `body_timeout` seconds, or the
connection is closed (with 408 if no answer has begun), so a client that announces a body and
never sends it cannot hold a socket (and its file descriptor) for good. A request the
parser refuses (a NUL or another control character in a header, say) gets 400 in the
`{"error": …}` shape instead of uvicorn's plain text, and so does an upgrade websockets
would refuse for its WebSocket headers (a `Sec-WebSocket-Version` other than 13, a bad
`Sec-WebSocket-Key`). These answers are in English: they are sent before the request (and
so its locale) is known.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from websockets.exceptions import InvalidHeader, SecurityError
from websockets.server import ServerProtocol

# Large enough for long cookies and a cable token in the URL (browsers and proxies commonly
# stop at 8–64 KiB), small enough that thousands of slow clients cost little memory.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
# Seconds; generous for a slow mobile link, short enough that idle sockets cannot pile up.
DEFAULT_HEAD_TIMEOUT = 10
# Seconds for a whole body once its head is in: bodies are at most a few hundred KiB.
DEFAULT_BODY_TIMEOUT = 60


def _error_response(status: bytes, code: str, message: str, extra_headers: bytes = b"") -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\n" + extra_headers + b"content-type: application/json\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n"
        b"connection: close\r\n\r\n" + body
    )


_HEAD_TOO_LARGE = _error_response(
    b"431 Request Header Fields Too Large",
    "request.headers_too_large",
    "The request line and headers are too large.",
)
_INVALID_HTTP = _error_response(
    b"400 Bad Request", "request.invalid_http", "The request is not valid HTTP/1.1."
)
_INVALID_UPGRADE = _error_response(
    b"400 Bad Request",
    "request.invalid_upgrade",
    "The WebSocket upgrade is not valid: it needs Sec-WebSocket-Version: 13 and a "
    "Sec-WebSocket-Key of 16 bytes in base64.",
    # RFC 6455 §4.4: a server refusing the version names the one it speaks.
    b"sec-websocket-version: 13\r\n",
)
_HEAD_TIMEOUT = _error_response(
    b"408 Request Timeout", "request.timeout", "The request headers did not arrive in time."
)
_BODY_TIMEOUT = _error_response(
    b"408 Request Timeout", "request.timeout", "The request body did not arrive in time."
)


def _websocket_head_refusal(head: bytes) -> bytes | None:
    """Our answer to an upgrade head that websockets would refuse, or None if it takes it.

    uvicorn hands an upgrade's head to websockets, which parses it again with limits of its
    own (8 KiB lines, 128 headers) and no body allowed; on that failure path uvicorn never
    sends websockets' answer nor closes, and the connection hangs. Asking websockets' own
    parser (public sans-I/O API, about 30 µs) keeps its rules and ours from drifting apart.
    """
    probe = ServerProtocol()
    probe.receive_data(head)
    if probe.handshake_exc is not None:
        return _HEAD_TOO_LARGE if isinstance(probe.handshake_exc, SecurityError) else _INVALID_HTTP
    # The WebSocket headers, checked as websockets will (it would answer 400 text/plain).
    # Only header faults count: subprotocols and origins are the app's to judge.
    requests = probe.events_received()
    if not requests:  # never for a complete head; nothing to judge then
        return None
    probe.accept(requests[0])
    return _INVALID_UPGRADE if isinstance(probe.handshake_exc, InvalidHeader) else None


class BoundedHeadProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEAD_BYTES
    head_timeout: float = DEFAULT_HEAD_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._reading_head = True
        self._head_refused = False
        self._in_message = False
        self._head_clock: asyncio.TimerHandle | None = None
        self._body_clock: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_clock()
        self._stop_body_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._in_message:
            # Bytes between requests start the next head's clock; bare CRLFs too, which the
            # parser skips without beginning a message (and which stop the keep-alive timer).
            self._start_head_clock()
        reading_head = self._reading_head
        super().data_received(data)
        # Only a chunk after which the head is still incomplete is all head: the chunk that
        # completes it may carry the start of a body, which the body limit governs.
        if reading_head and self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._reading_head = True
        self._in_message = True

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._stop_head_clock()
        # A head that arrived in one chunk with its end (a long URL, say) is measured here.
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.max_head_bytes:
            self._head_refused = True
            # httptools turns this into an HttpParserError, which uvicorn answers through
            # `send_400_response` before it runs anything.
            raise ValueError("request head too large")
        super().on_headers_complete()
        if not self.transport.is_closing():
            self._body_clock = self.loop.call_later(self.body_timeout, self._body_timed_out)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._stop_body_clock()
        super().on_message_complete()

    def handle_websocket_upgrade(self) -> None:
        self._stop_body_clock()  # an upgrade has no body; the socket then lives as long as it may
        # The head as uvicorn's `handle_websocket_upgrade` rebuilds it for websockets.
        lines = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            lines += [name, b": ", value, b"\r\n"]
        refusal = _websocket_head_refusal(b"".join(lines) + b"\r\n")
        if refusal is not None:
            self.logger.warning("WebSocket upgrade head refused (websockets' limits).")
            self._close_with(refusal)
            return
        super().handle_websocket_upgrade()
        # The WebSocket protocol owns the connection now. The parser calls back into this
        # protocol, which holds it: a reference cycle that outlives the socket if the
        # collector's policy froze it mid-handshake (infra/gc_policy.py).
        self.parser = None  # type: ignore[assignment]

    def send_400_response(self, msg: str) -> None:
        if self._head_refused:
            self._refuse_head()
            return
        self._close_with(_INVALID_HTTP)

    def _refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused.", self.max_head_bytes)
        self._close_with(_HEAD_TOO_LARGE)

    def _close_with(self, answer: bytes) -> None:
        self._stop_head_clock()
        self.transport.write(answer)
        self.transport.close()

    def _start_head_clock(self) -> None:
        if self._head_clock is None and not self.transport.is_closing():
            self._head_clock = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_clock(self) -> None:
        if self._head_clock is not None:
            self._head_clock.cancel()
            self._head_clock = None

    def _head_timed_out(self) -> None:
        self._head_clock = None
        if self.cycle is not None and not self.cycle.response_complete:
            # Still answering an earlier, pipelined request, with reading paused meanwhile:
            # the wait is the hub's, not the client's. Look again later.
            self._start_head_clock()
            return
        # Debug, not warning: browsers leave speculative, silent connections open routinely.
        self.logger.debug("Request head not complete within %s s; closed.", self.head_timeout)
        self._close_with(_HEAD_TIMEOUT)

    def _stop_body_clock(self) -> None:
        if self._body_clock is not None:
            self._body_clock.cancel()
            self._body_clock = None

    def _body_timed_out(self) -> None:
        self._body_clock = None
        if self.transport.is_closing():
            return
        self.logger.debug("Request body not complete within %s s; closed.", self.body_timeout)
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()  # an answer is on its way: no second one in the same stream
        else:
            self._close_with(_BODY_TIMEOUT)


def bounded_head_protocol(
    max_head_bytes: int, head_timeout: float, body_timeout: float = DEFAULT_BODY_TIMEOUT
) -> type[BoundedHeadProtocol]:
    """The protocol class to hand uvicorn (`Config(http=…)`) for these limits."""
    return type(
        "BoundedHeadProtocol",
        (BoundedHeadProtocol,),
        {
            "max_head_bytes": max_head_bytes,
            "head_timeout": head_timeout,
            "body_timeout": body_timeout,
        },
    )
