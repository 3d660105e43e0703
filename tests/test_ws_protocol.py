"""The hub's WebSocket protocol (hub.ws_protocol): its direct frame writes, read back by a real
WebSocket parser at each of the three length encodings, and what a socket keeps and drops,
driven in process through uvicorn's own protocol code with a recording transport."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest
import uvicorn
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from hub.ws_protocol import WRITE_NOW, CycleFreeWebSocketProtocol, text_frame


def _client() -> Protocol:
    return Protocol(Side.CLIENT, max_size=None)  # open, past the handshake: frames only


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 200_000])
def test_a_text_frame_reads_back_as_the_same_text(size: int) -> None:
    text = ("ž" * size)[:size]  # two bytes a character: crosses each boundary in bytes too
    client = _client()
    client.receive_data(text_frame(text))
    events = client.events_received()
    assert len(events) == 1
    frame = events[0]
    assert isinstance(frame, Frame)
    assert frame.opcode is Opcode.TEXT and frame.fin
    assert frame.data.decode() == text


def test_frames_written_back_to_back_read_as_separate_messages() -> None:
    client = _client()
    client.receive_data(text_frame('{"type":"ping"}') + text_frame('{"message":1}'))
    assert [f.data for f in client.events_received()] == [b'{"type":"ping"}', b'{"message":1}']


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )


async def test_an_accepted_socket_drops_its_handshake_and_writes_frames_directly() -> None:
    scopes: list[dict] = []

    async def app(scope, receive, send) -> None:
        scopes.append(scope)
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await receive()  # until the client goes

    config = uvicorn.Config(app, ws_per_message_deflate=False, interface="asgi3", log_level="error")
    config.load()
    protocol = CycleFreeWebSocketProtocol(config, ServerState(), {})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    key = base64.b64encode(os.urandom(16)).decode()
    protocol.data_received(
        (
            "GET /cable HTTP/1.1\r\nHost: hub.test\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\nUser-Agent: a long browser header\r\n\r\n"
        ).encode()
    )
    for _ in range(20):
        await asyncio.sleep(0)
    assert transport.written.startswith(b"HTTP/1.1 101")
    # The handshake's request and response (their headers) are not kept for the socket's life.
    assert protocol.request is None and protocol.response is None
    [scope] = scopes
    write_now = scope["extensions"][WRITE_NOW]
    handshake = len(transport.written)
    assert write_now(text_frame('{"type":"welcome"}')) is True
    assert bytes(transport.written[handshake:]) == text_frame('{"type":"welcome"}')

    protocol.connection_lost(None)
    for _ in range(20):
        await asyncio.sleep(0)
    assert write_now(text_frame("late")) is False  # a lost socket takes nothing
    assert WRITE_NOW not in scope["extensions"]  # the scope no longer holds the protocol
