"""The bench's HTTP client: plain asyncio HTTP/1.1 keep-alive, so the publisher is never the
bottleneck.

httpx tops out near 150 requests/s on the 2-core bench machine (64 connections against a
trivial endpoint that this client drives at thousands per second), so a publisher built on it
measures httpx, not the server. `HttpPool` keeps up to `size` persistent connections to one
origin (`asyncio.open_connection`), writes each request in one `write`, and reads the status
line, the headers and a `Content-Length` (or chunked) body. Nothing else: no redirects, no
TLS, no proxies, no cookies; one origin per pool.

Requests and answers look like httpx's (`post(url, json=…, headers=…)`, `.status_code`,
`.text`, `.json()`), so the systems' adapters read the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json as jsonlib
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# A server closes an idle keep-alive connection after a while (uvicorn: 5 s); a request written
# into a connection the server is closing is lost. Idle connections older than this are
# replaced instead of reused.
IDLE_REUSE_SECONDS = 2.0


class HttpError(RuntimeError):
    """The connection failed, timed out, or the server's answer was not HTTP/1.1 we read."""


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    content: bytes = field(repr=False)

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def _read_response(reader: asyncio.StreamReader) -> tuple[Response, bool]:
    """One response from `reader`; (response, whether the connection may be reused)."""
    head = await reader.readuntil(b"\r\n\r\n")  # LimitOverrunError past 64 KiB of headers
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif int(status) in (204, 304) or 100 <= int(status) < 200:
        body = b""
    else:  # delimited by the server closing the connection
        body = await reader.read()
        keep_alive = False
    return Response(int(status), headers, body), keep_alive


class HttpPool:
    """Up to `size` keep-alive connections to one origin; at most `size` requests at once."""

    def __init__(self, base_url: str, size: int = 16, timeout: float = 30.0) -> None:
        origin = urlsplit(base_url)
        if origin.scheme != "http" or not origin.hostname:
            raise ValueError(f"HttpPool speaks plain http:// only, not {base_url!r}")
        self.host = origin.hostname
        self.port = origin.port or 80
        self.authority = origin.netloc
        self.timeout = timeout
        self.size = size
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(size)
        self.opened = 0  # connections opened over the pool's life (reuse shows as a low count)

    async def __aenter__(self) -> HttpPool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        while self.idle:
            self.idle.pop().close()

    def _path(self, url: str) -> str:
        if url.startswith("/"):
            return url
        parts = urlsplit(url)
        if parts.netloc != self.authority:
            raise ValueError(f"{url!r} is not on this pool's origin {self.authority}")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # the most recently used: the least likely to be closing
            if now - conn.idle_since < IDLE_REUSE_SECONDS and not conn.reader.at_eof():
                return conn
            conn.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened += 1
        return _Connection(reader, writer)

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request and read its answer; HttpError when that fails or times out."""
        body = jsonlib.dumps(json, separators=(",", ":")).encode() if json is not None else content
        lines = [f"{method} {self._path(url)} HTTP/1.1", f"Host: {self.authority}"]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
            if json is not None:
                lines.append("Content-Type: application/json")
        lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        async with self.slots:
            conn = await self._connection()
            reusable = False
            try:
                async with asyncio.timeout(self.timeout):
                    conn.writer.write(data)
                    await conn.writer.drain()
                    response, reusable = await _read_response(conn.reader)
            except (
                OSError,
                TimeoutError,
                ValueError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
            ) as exc:
                raise HttpError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            finally:
                if reusable:
                    conn.idle_since = time.monotonic()
                    self.idle.append(conn)
                else:
                    conn.close()
        return response

    async def post(
        self,
        url: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        return await self.request("POST", url, json=json, content=content, headers=headers)

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> Response:
        return await self.request("GET", url, headers=headers)
