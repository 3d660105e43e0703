"""The cable's wire protocol as values: frames, disconnect reasons, commands, control messages.

Pure functions, no sockets and no event loop: each test runs in microseconds. What goes over
a real socket is tested in-process in test_cable_inprocess.py and end to end in test_cable.py.
"""

from __future__ import annotations

import json

import pytest

from hub.cable.protocol import (
    MAX_FRAME_BYTES,
    WELCOME,
    Command,
    DisconnectReason,
    FrameError,
    PingFrames,
    RecoverGap,
    SessionsRevoked,
    broadcast_frame,
    confirm_subscription,
    decode_control,
    encode_control,
    parse_action,
    parse_command,
    parse_identifier,
    recover_notice,
    reject_subscription,
    transmission,
)

# The wire contract: every reason the hub may give, and whether the JS client reconnects.
REASONS = {
    "unauthorized": False,
    "invalid_request": False,
    "token_expired": True,
    "server_restart": True,
    "too_slow": True,
    "remote": True,
}


def test_every_disconnect_reason_has_its_wire_string_and_reconnect_flag():
    assert {reason.wire: reason.reconnect for reason in DisconnectReason} == REASONS


@pytest.mark.parametrize("reason", list(DisconnectReason), ids=lambda r: r.wire)
def test_disconnect_frame(reason):
    frame = json.loads(reason.frame)
    assert frame == {"type": "disconnect", "reason": reason.wire, "reconnect": REASONS[reason.wire]}


def test_constant_frames():
    assert json.loads(WELCOME) == {"type": "welcome"}
    identifier = json.dumps({"channel": "NotificationsChannel"})
    assert json.loads(confirm_subscription(identifier)) == {
        "identifier": identifier,
        "type": "confirm_subscription",
    }
    assert json.loads(reject_subscription(identifier)) == {
        "identifier": identifier,
        "type": "reject_subscription",
    }


def test_a_ping_frame_is_encoded_once_a_second():
    pings = PingFrames()
    first = pings.at(1000.2)
    assert json.loads(first) == {"type": "ping", "message": 1000}
    assert pings.at(1000.9) is first  # reused by every socket within the second
    assert json.loads(pings.at(1001.0)) == {"type": "ping", "message": 1001}


def test_transmission_as_value_or_as_json_string():
    assert json.loads(transmission("i", {"a": 1}, as_json_string=False)) == {
        "identifier": "i",
        "message": {"a": 1},
    }
    frame = json.loads(transmission("i", {"a": 1}, as_json_string=True))
    assert json.loads(frame["message"]) == {"a": 1}


def test_frames_never_carry_nan():
    frame = json.loads(transmission("i", {"x": float("nan")}, as_json_string=False))
    assert frame["message"] == {"x": None}


def test_broadcast_frame_carries_the_payload_as_a_json_string():
    frame = broadcast_frame('{"channel":"C"}', '{"action":"new","n":"\u00e9"}')
    assert frame.isascii()
    assert json.loads(frame) == {
        "identifier": '{"channel":"C"}',
        "message": '{"action":"new","n":"\u00e9"}',
    }


# -- commands -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["subscribe", "unsubscribe", "message"])
def test_parse_command(kind):
    text = json.dumps({"command": kind, "identifier": "x", "data": "{}"})
    assert parse_command(text) == Command(kind, "x", "{}")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("not json", None),
        ("[]", "no identifier"),
        ('{"command": "subscribe"}', "no identifier"),
        ('{"command": "subscribe", "identifier": 7}', "no identifier"),
        ('{"command": "dance", "identifier": "x"}', "unknown command"),
        ('{"identifier": "x"}', "unknown command"),
        ('{"command": ["subscribe"], "identifier": "x"}', "unknown command"),
        ('{"command": {}, "identifier": "x"}', "unknown command"),
        ('{"command": "subscribe", "identifier": "x", "n": NaN}', None),
        ('{"command": "subscribe", "identifier": "\\ud800"}', None),
        ('{"command": "subscribe", "identifier": "\\u0000"}', None),
        ("[" * 40 + "]" * 40, None),
        ('{"identifier": "' + "x" * MAX_FRAME_BYTES + '"}', "oversized frame"),
        # Under the limit in characters, over it in UTF-8 bytes.
        ('{"identifier": "' + "é" * (MAX_FRAME_BYTES // 2) + '"}', "oversized frame"),
    ],
)
def test_bad_commands_are_frame_errors(text, why):
    with pytest.raises(FrameError) as caught:
        parse_command(text)
    if why is not None:
        assert str(caught.value) == why


def test_parse_identifier():
    assert parse_identifier('{"channel":"C","room":1}') == ("C", {"channel": "C", "room": 1})
    for bad in ('{"room":1}', '{"channel":7}', "[]", "nope", '"C"'):
        assert parse_identifier(bad) is None


def test_parse_action():
    assert parse_action('{"action":"sync","since":3}') == ("sync", {"action": "sync", "since": 3})
    for bad in (None, 7, {"action": "sync"}, "{}", '{"action":1}', "nope", '["sync"]'):
        with pytest.raises(FrameError):
            parse_action(bad)


# -- control messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        SessionsRevoked(frozenset({"s1", "s2"})),
        SessionsRevoked(frozenset()),
        RecoverGap(1700000000.25),
    ],
)
def test_control_messages_round_trip(message):
    assert decode_control(encode_control(message)) == message


def test_control_messages_read_what_earlier_hub_versions_sent():
    # json.dumps' default spacing, as the control messages were written before this module.
    assert decode_control('{"type": "sessions_revoked", "sids": ["a", "b"]}') == SessionsRevoked(
        frozenset({"a", "b"})
    )
    assert decode_control('{"type": "recover", "since": 12.5}') == RecoverGap(12.5)
    assert decode_control(recover_notice(3.0)) == RecoverGap(3.0)


@pytest.mark.parametrize(
    "raw",
    [
        "nope",
        "[]",
        '{"type": "dance"}',
        '{"sids": ["a"]}',
        '{"type": "sessions_revoked", "sids": "a"}',
        '{"type": "sessions_revoked", "sids": [1]}',
        '{"type": "recover"}',
        '{"type": "recover", "since": "yesterday"}',
        '{"type": "recover", "since": true}',
        '{"type": "recover", "since": 1e999}',
    ],
)
def test_malformed_control_messages_are_frame_errors(raw):
    with pytest.raises(FrameError):
        decode_control(raw)
