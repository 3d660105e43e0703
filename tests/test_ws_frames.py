"""The cable's direct frame writes (hub.ws_protocol.text_frame) read back by a real WebSocket
client parser, at each of the three length encodings and with text that is not ASCII."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from hub.ws_protocol import text_frame


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
