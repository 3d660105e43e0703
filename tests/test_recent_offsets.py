"""The cable's per-stream memory of delivered offsets: duplicates refused inside the window,
old entries forgotten, so memory follows the recent delivery rate, not the history."""

from __future__ import annotations

import pytest

from hub.cable import registry


def test_window_refuses_duplicates_and_forgets_old_offsets(monkeypatch: pytest.MonkeyPatch):
    clock = [1000.0]
    monkeypatch.setattr(registry.time, "monotonic", lambda: clock[0])
    stream = registry._Stream(recover=None)
    assert [stream.first_delivery(i) for i in (1, 2, 3)] == [True, True, True]
    assert stream.first_delivery(2) is False  # the late original of a recovered one
    assert stream.first_delivery(None) is True  # state messages carry no offset

    clock[0] += registry.RECENT_SECONDS + 1
    assert stream.first_delivery(4) is True
    assert list(stream.recent) == [4]  # 1–3 were forgotten on the way

    clock[0] += registry.RECENT_SECONDS + 1
    stream.forget_before(clock[0] - registry.RECENT_SECONDS)  # the periodic sweep
    assert not stream.recent


def test_window_is_capped_per_stream(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(registry.time, "monotonic", lambda: 5.0)
    stream = registry._Stream(recover=None)
    for offset in range(registry.RECENT_OFFSETS + 10):
        stream.first_delivery(offset)
    assert len(stream.recent) == registry.RECENT_OFFSETS
    assert next(iter(stream.recent)) == 10
