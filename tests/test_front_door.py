"""The front door: what the hub's HTTP protocol refuses before the app sees a request.

Raw sockets, because well-behaved clients (httpx, websockets) cannot send these heads. One hub
with a short head deadline serves the module; the front door runs before any SQL, so SQLite
is enough.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.settings import Settings, SettingsError
from tests.support import HubServer, api_user, cable, create_product

HEAD_TIMEOUT = 2  # seconds, HUB_HEAD_TIMEOUT of the hub below
BODY_TIMEOUT = 5  # seconds, its HUB_BODY_TIMEOUT
MARGIN = 3  # seconds of slack for a loaded machine

UPGRADE = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    server = HubServer(
        workdir=tmp_path_factory.mktemp("door"),
        extra_env={"HUB_HEAD_TIMEOUT": str(HEAD_TIMEOUT), "HUB_BODY_TIMEOUT": str(BODY_TIMEOUT)},
    )
    server.start()
    yield server
    server.stop()


async def _raw_exchange(hub: HubServer, request: bytes, within: float = 10) -> bytes:
    """Send `request`, then everything the hub answers until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), within)
    finally:
        writer.close()


def _error_code(answer: bytes) -> str:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"]


async def test_a_request_head_over_the_cap_is_refused_with_431_and_closed(door):
    # Headers that never end: refused once 64 KiB have arrived, not buffered forever.
    never_ending = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Junk: " + b"a" * 70_000
    answer = await _raw_exchange(door, never_ending)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert _error_code(answer) == "request.headers_too_large"
    # A long URL that arrives whole with its head (a WebSocket upgrade): answered, not left open.
    upgrade = b"GET /cable?token=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: hub\r\n" + UPGRADE
    assert (await _raw_exchange(door, upgrade + b"\r\n")).startswith(b"HTTP/1.1 431 ")
    # Heads within the cap are served as before: a 16 KB cookie, and keep-alive requests.
    async with httpx.AsyncClient(base_url=door.url) as client:
        ok = await client.get("/healthz", headers={"Cookie": "a=" + "b" * 16_000})
    assert ok.status_code == 200
    twice = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n" * 2
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    writer.write(twice)
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    second = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    writer.close()
    assert first.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 200" in second


def _upgrade_head(request_line_bytes: int = 0, header_line_bytes: int = 0, headers: int = 0):
    """An upgrade head whose request line, one extra header line (each CRLF included), or
    header count (extras added to the 5 below) is exactly the given size."""
    start, end = b"GET /cable?token=", b" HTTP/1.1\r\n"
    token = b"a" * (request_line_bytes - len(start) - len(end)) if request_line_bytes else b"x"
    extra = b""
    if header_line_bytes:
        extra = b"X-Big: " + b"a" * (header_line_bytes - len(b"x-big: \r\n")) + b"\r\n"
    extra += b"".join(b"X-H%d: v\r\n" % i for i in range(headers))
    return start + token + end + b"Host: hub\r\n" + extra + UPGRADE + b"\r\n"


# websockets re-parses an upgrade's head with 8 KiB lines (CRLF included) and 128 headers.
AT_AND_OVER_WEBSOCKETS_LIMITS = {
    "request line": (_upgrade_head(request_line_bytes=8192), _upgrade_head(9 * 1024)),
    "header line": (_upgrade_head(header_line_bytes=8192), _upgrade_head(0, 9 * 1024)),
    "header count": (_upgrade_head(headers=128 - 5), _upgrade_head(headers=129 - 5)),
}


@pytest.mark.parametrize("limit", AT_AND_OVER_WEBSOCKETS_LIMITS)
async def test_an_upgrade_head_over_websockets_limits_gets_431_and_is_closed(door, limit):
    at_limit, over_limit = AT_AND_OVER_WEBSOCKETS_LIMITS[limit]
    started = time.monotonic()
    answer = await _raw_exchange(door, over_limit, within=5)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert _error_code(answer) == "request.headers_too_large"
    assert time.monotonic() - started < 5  # answered and closed, not left hanging
    # One byte (or header) less is what websockets accepts: handed over and upgraded.
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    writer.write(at_limit)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 101 "), head[:200]


@pytest.mark.parametrize(
    "framing",
    [b"Transfer-Encoding: chunked\r\n", b"Content-Length: 3\r\n"],
    ids=["chunked", "length"],
)
async def test_an_upgrade_with_a_body_gets_400_and_is_closed(door, framing):
    head = b"GET /cable?token=x HTTP/1.1\r\nHost: hub\r\n" + framing + UPGRADE + b"\r\n"
    answer = await _raw_exchange(door, head + b"abc", within=5)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert _error_code(answer) == "request.invalid_http"


@pytest.mark.parametrize(
    "headers",
    [
        b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Sec-WebSocket-Version: abc\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n",
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
    ],
    ids=["version-8", "version-junk", "bad-key", "no-version"],
)
async def test_an_upgrade_websockets_refuses_gets_the_error_shape(door, headers):
    head = (
        b"GET /cable?token=x HTTP/1.1\r\nHost: hub\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\n" + headers + b"\r\n"
    )
    answer = await _raw_exchange(door, head, within=5)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"\r\nsec-websocket-version: 13\r\n" in answer.split(b"\r\n\r\n", 1)[0]
    assert _error_code(answer) == "request.invalid_upgrade"


async def test_a_valid_upgrade_still_reaches_the_cable(door):
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    try:
        writer.write(b"GET /cable?token=x HTTP/1.1\r\nHost: hub\r\n" + UPGRADE + b"\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 101 "), head  # then the cable's own `unauthorized`


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_refused_upgrades_do_not_grow_memory(door):
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux /proc to read the hub's RSS")
    heads = [head for _, head in AT_AND_OVER_WEBSOCKETS_LIMITS.values()]
    gate = asyncio.Semaphore(50)

    async def attempt(i: int) -> bytes:
        async with gate:
            return await _raw_exchange(door, heads[i % len(heads)], within=5)

    await asyncio.gather(*(attempt(i) for i in range(300)))  # warm-up: allocator, logs
    before = _rss_mib(door.process.pid)
    answers = await asyncio.gather(*(attempt(i) for i in range(1500)))
    grown = _rss_mib(door.process.pid) - before
    assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers)
    # Parked handshakes cost 20-130 KB each (30+ MiB here); refused ones cost nothing lasting.
    assert grown < 10, f"RSS grew {grown:.1f} MiB over 1,500 refused upgrades"


async def _answer_and_close_time(reader: asyncio.StreamReader, since: float) -> tuple[bytes, float]:
    answer = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT + MARGIN)
    return answer, time.monotonic() - since


async def test_a_silent_connection_gets_408_while_a_cable_socket_lives_on(door):
    async with httpx.AsyncClient(base_url=door.url) as client:
        _, token = await api_user(client, create_product(door)["sk_live"])
    tab = await cable(door.url, token)
    opened = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    answer, elapsed = await _answer_and_close_time(reader, opened)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert _error_code(answer) == "request.timeout"
    assert HEAD_TIMEOUT - 0.5 <= elapsed <= HEAD_TIMEOUT + MARGIN
    # The upgraded socket, open longer than the head deadline, still pings and answers.
    ping = await tab.recv(within=5)
    assert ping["type"] == "ping", ping
    await tab.perform("sync", since=0)
    assert (await tab.next_message("sync"))["unread_count"] == 0
    await tab.close()


async def test_a_trickled_head_gets_408_even_after_served_keep_alive_requests(door):
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    request = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n"
    writer.write(request)
    assert (await asyncio.wait_for(reader.readuntil(b"}"), 5)).startswith(b"HTTP/1.1 200")
    # Idle between requests for longer than the head deadline: keep-alive's business, not its.
    await asyncio.sleep(HEAD_TIMEOUT + 1)
    writer.write(request)
    assert (await asyncio.wait_for(reader.readuntil(b"}"), 5)).startswith(b"HTTP/1.1 200")
    # The next head trickles in at 10 bytes a second: its clock starts with its first byte.
    started = time.monotonic()
    trickling = asyncio.create_task(_trickle(writer, b"GET /healthz HTTP/1.1\r\nX-Slow: " * 4))
    answer, elapsed = await _answer_and_close_time(reader, started)
    trickling.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert _error_code(answer) == "request.timeout"
    assert HEAD_TIMEOUT - 0.5 <= elapsed <= HEAD_TIMEOUT + MARGIN


async def _trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """8 bytes every 0.8 s: slow, and never arriving just as the deadline closes the socket
    (a close with unread input is a reset, which may discard the 408 at the client)."""
    for start in range(0, len(data), 8):
        writer.write(data[start : start + 8])
        await asyncio.sleep(0.8)


async def test_a_complete_head_is_not_timed_out_while_its_body_and_answer_take_longer(door):
    # Line ends alone (which the parser skips) do not keep a connection open either.
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    crlfs = asyncio.create_task(_trickle(writer, b"\r\n" * 40))
    answer, _ = await _answer_and_close_time(reader, time.monotonic())
    crlfs.cancel()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    # A head that is complete in time: the body may take longer, the app answers as usual.
    body = b'{"email": "nobody@example.com", "password": "x"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: hub\r\nX-Product-Slug: demo\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    await writer.drain()
    await asyncio.sleep(HEAD_TIMEOUT + 1)
    writer.write(body)
    answer = await asyncio.wait_for(reader.readuntil(b"}"), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]


async def test_a_body_that_never_ends_gets_408_while_a_cable_socket_lives_on(door):
    # Found by an outside review: a body announced and never sent held its socket for good;
    # 19,950 such connections used up a process's file descriptors and it stopped answering.
    async with httpx.AsyncClient(base_url=door.url) as client:
        _, token = await api_user(client, create_product(door)["sk_live"])
    tab = await cable(door.url, token)
    stalled = []
    for path in (b"/api/v1/auth/refresh", b"/console/sign-in", b"/oauth/token"):
        reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
        writer.write(
            b"POST %s HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"r' % path
        )
        await writer.drain()
        stalled.append((reader, writer))
    started = time.monotonic()
    for reader, writer in stalled:
        answer = await asyncio.wait_for(reader.read(), BODY_TIMEOUT + MARGIN + 2)
        writer.close()
        # The app may already have refused the request (its answer), else the door's 408;
        # either way the connection is closed, not held.
        assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer[:200]
    assert time.monotonic() - started <= BODY_TIMEOUT + MARGIN + 2
    # The cable socket, open longer than the body deadline, is not a request body.
    await tab.perform("sync", since=0)
    assert (await tab.next_message("sync"))["unread_count"] == 0
    await tab.close()


async def test_a_stalled_body_is_answered_408_when_no_answer_has_begun(door):
    reader, writer = await asyncio.open_connection("127.0.0.1", door.port)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: hub\r\nX-Product-Slug: demo\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"email"'
    )
    await writer.drain()
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), BODY_TIMEOUT + MARGIN)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert _error_code(answer) == "request.timeout"
    assert BODY_TIMEOUT - 0.5 <= time.monotonic() - started <= BODY_TIMEOUT + MARGIN


def test_the_head_timeout_is_a_whole_number_of_seconds_of_at_least_one():
    assert Settings.from_env({"HUB_HEAD_TIMEOUT": "30"}).head_timeout == 30
    assert Settings().head_timeout == 10
    for bad in ("0", "-5", "ten"):
        with pytest.raises(SettingsError, match="HUB_HEAD_TIMEOUT"):
            Settings.from_env({"HUB_HEAD_TIMEOUT": bad})
