"""uvicorn's HTTP/1.1 protocol with a cap on the request head, and the hub's error shape for
requests refused before the app sees them.

httptools buffers a request's head until it is complete and sets no limit of its own, so a
client that sends megabytes of headers, or never ends them, grows the process's memory for
as long as its connection stays open. Here the bytes of a head that is still incomplete are
counted, and past the cap the client gets 431 and the connection is closed. A request the
parser refuses (a NUL or another control character in a header, say) gets 400 in the
`{"error": …}` shape instead of uvicorn's plain text. Both answers are in English: they are
sent before the request (and so its locale) is known.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Large enough for long cookies and a cable token in the URL (browsers and proxies commonly
# stop at 8–64 KiB), small enough that thousands of slow clients cost little memory.
DEFAULT_MAX_HEAD_BYTES = 64 * 1024


def _error_response(status: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\n"
        b"content-type: application/json\r\n"
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


class BoundedHeadProtocol(HttpToolsProtocol):
    max_head_bytes = DEFAULT_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_bytes = 0
        self._reading_head = True
        self._head_refused = False

    def data_received(self, data: bytes) -> None:
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

    def on_headers_complete(self) -> None:
        self._reading_head = False
        # A head that arrived in one chunk with its end (a long URL, say) is measured here.
        size = len(self.url) + sum(len(name) + len(value) for name, value in self.headers)
        if size > self.max_head_bytes:
            self._head_refused = True
            # httptools turns this into an HttpParserError, which uvicorn answers through
            # `send_400_response` before it runs anything.
            raise ValueError("request head too large")
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_refused:
            self._refuse_head()
            return
        self.transport.write(_INVALID_HTTP)
        self.transport.close()

    def _refuse_head(self) -> None:
        self.logger.warning("Request head over %d bytes refused.", self.max_head_bytes)
        self.transport.write(_HEAD_TOO_LARGE)
        self.transport.close()


def bounded_head_protocol(max_head_bytes: int) -> type[BoundedHeadProtocol]:
    """The protocol class to hand uvicorn (`Config(http=…)`) for this cap."""
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"max_head_bytes": max_head_bytes})
