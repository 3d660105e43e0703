"""Windows in which messages may be missed, which the broker must report so that the cable
re-reads them from SQL.

A channel subscribed while its Redis connection is not up yet: the cable confirms a
subscription once the broker has the channel, and the subscriber subscribes it on Redis only
when its connection is up; what is published until then is missed, and the subscriber reports
that window as a gap, as it does after a reconnect. (On a cluster this is every stream that
lands on a shard the process had no connection to yet: tests/test_redis_cluster.py.)

A publish that fails: the recovery it asks for reaches back to when the publish began.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from infra import broker as broker_module
from infra.broker import Broker
from infra.pubsub import Event, Subscriber
from tests.conftest import service_missing


@pytest.fixture
async def redis(redis_url: str | None) -> AsyncIterator[aioredis.Redis]:
    if redis_url is None:
        service_missing("Redis (REDIS_URL)")
    client = aioredis.from_url(redis_url)
    yield client
    await client.aclose()


def subscriber(client: aioredis.Redis, gaps: list[float]) -> Subscriber:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    return Subscriber(lambda: client, queue, gaps.append, name="test subscriber")


def channel() -> str:
    return f"gaps-test:{uuid.uuid4().hex}"


async def connected(subscriber: Subscriber) -> None:
    await asyncio.wait_for(subscriber.connected.wait(), timeout=10)


async def test_a_channel_subscribed_before_the_first_connection_is_a_gap(redis):
    gaps: list[float] = []
    listening = subscriber(redis, gaps)
    listening.start()
    before = time.time()
    await listening.subscribe(channel())  # the run loop has not connected yet
    try:
        await connected(listening)
        assert len(gaps) == 1 and before <= gaps[0] <= time.time()
    finally:
        await listening.stop()


async def test_channels_subscribed_before_start_or_on_a_live_connection_are_no_gap(redis):
    gaps: list[float] = []
    listening = subscriber(redis, gaps)
    first, later = channel(), channel()
    await listening.subscribe(first)  # as the broker does with its control channel
    listening.start()
    try:
        await connected(listening)
        await listening.subscribe(later)
        # Both are live: a message to each arrives, and no gap was reported.
        for name in (first, later):
            for _ in range(100):
                if await redis.publish(name, "hello") == 1:
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError(f"nobody subscribed to {name}")
        assert gaps == []
    finally:
        await listening.stop()


async def test_a_publish_that_hangs_before_failing_is_recovered_from_when_it_began(
    monkeypatch,
):
    """Against a Redis that hangs (not refusing, not answering), a publish fails only after
    its timeouts, 15 s and more. The recovery it asks for must reach back to when it began:
    counted from when it gave up, it missed the notification it was carrying."""
    notices: list[float] = []
    broker = Broker(gap_notice=lambda since: notices.append(since) or "gap")
    monkeypatch.setattr(broker_module, "GAP_NOTICE_QUIET_SECONDS", 0.0)
    await broker.start()
    try:
        real_send = broker._backend.publish_many

        async def hanging(messages):
            await asyncio.sleep(0.5)  # a hang, much shortened
            raise aioredis.TimeoutError("Timeout reading from socket")

        monkeypatch.setattr(broker._backend, "publish_many", hanging)
        began = time.time()
        assert await broker.publish("notifications:1", "carried") is False
        monkeypatch.setattr(broker._backend, "publish_many", real_send)
        assert await broker.publish("notifications:1", "next") is True
        assert notices == [pytest.approx(began - broker_module.GAP_MARGIN_SECONDS, abs=0.1)]
    finally:
        await broker.stop()
