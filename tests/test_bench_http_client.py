"""The bench publisher's HTTP client (bench/http_client.py) against a small in-process server.

The server is a plain asyncio HTTP/1.1 responder written here, so the test controls exactly
what the client must read: Content-Length and chunked bodies, `Connection: close`, a server
that hangs up mid-answer or never answers. Keep-alive is checked by counting the connections
the server accepted, not by timing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from bench.http_client import HttpError, HttpPool


class TinyServer:
    """Echoes each request's JSON body back; the path chooses how it answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode().split("\r\n")
                _, path, _ = request_line.split(" ")
                headers = dict(line.lower().split(": ", 1) for line in lines if line)
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.requests += 1
                answer = json.dumps({"path": path, "got": json.loads(body or b"null")}).encode()
                if path == "/chunked":
                    half = len(answer) // 2
                    chunks = b"".join(
                        b"%x\r\n%s\r\n" % (len(part), part)
                        for part in (answer[:half], answer[half:])
                    )
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                        + chunks
                        + b"0\r\n\r\n"
                    )
                elif path == "/close":
                    writer.write(
                        b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(answer), answer)
                    )
                    await writer.drain()
                    break
                elif path == "/hangup":
                    writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
                    await writer.drain()
                    break
                elif path == "/silent":
                    await asyncio.sleep(5)
                    break
                else:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def tiny() -> AsyncIterator[TinyServer]:
    server = TinyServer()
    await server.start()
    yield server
    await server.stop()


async def test_keep_alive_pool_reuses_its_connections_under_concurrency(tiny: TinyServer):
    base = f"http://127.0.0.1:{tiny.port}"
    async with HttpPool(base, size=4) as http:
        answers = await asyncio.gather(
            *(http.post(f"{base}/publish", json={"seq": i}) for i in range(200))
        )
    assert [a.status_code for a in answers] == [200] * 200
    assert [a.json()["got"]["seq"] for a in answers] == list(range(200))
    assert tiny.requests == 200
    assert tiny.connections <= 4  # 200 requests over at most 4 keep-alive connections
    assert http.opened == tiny.connections


async def test_chunked_and_connection_close_answers_are_read(tiny: TinyServer):
    base = f"http://127.0.0.1:{tiny.port}"
    async with HttpPool(base, size=1) as http:
        chunked = await http.post("/chunked", json={"a": 1})
        assert chunked.status_code == 200
        assert chunked.json() == {"path": "/chunked", "got": {"a": 1}}
        closing = await http.post(f"{base}/close", json=[1, 2])
        assert closing.status_code == 201
        assert closing.json()["got"] == [1, 2]
        after = await http.get(f"{base}/again")  # the closed connection is not reused
        assert after.json() == {"path": "/again", "got": None}
    assert tiny.connections == 2


async def test_a_broken_or_silent_server_is_an_error_not_a_hang(tiny: TinyServer):
    base = f"http://127.0.0.1:{tiny.port}"
    async with HttpPool(base, size=2, timeout=0.5) as http:
        with pytest.raises(HttpError, match="IncompleteReadError"):
            await http.post("/hangup", json={})
        with pytest.raises(HttpError, match="TimeoutError"):
            await http.post("/silent", json={})
        assert (await http.post("/fine", json={"ok": True})).json()["got"] == {"ok": True}
    with pytest.raises(ValueError, match="origin"):
        await HttpPool(base).post("http://example.com/publish", json={})
