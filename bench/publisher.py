"""The publisher: per-user notifications at a fixed rate through a system's server-side path.

Open loop: batch k of a step is due at `start + k * batch_size / rate` and carries that due
time as its `sent_at`, whether or not the previous batches have been answered (up to
`max_in_flight` requests at once). A server that falls behind therefore shows up as latency
instead of silently slowing the publisher down. Recipients cycle through the connected users
in a shuffled order, so every user gets about the same share.

Two modes (`PUBLISH_MODES`):

- `bulk`: batches sized so that one leaves every `batch_interval` seconds (20 ms: 50 requests/s
  at every rate), unless a fixed size is asked for. A server that keeps up then spends at most
  that interval on one batch, so batching adds at most ~20 ms to any notification's latency,
  and every system gets the same number of requests per second;
- `single`: one request per notification, one recipient each (what most product backends do:
  one event, one call), up to `--publish-connections` requests in flight, each on its own
  keep-alive connection. A server (or publisher) that cannot keep up shows as requests/s sent
  below the rate asked, and as latency.

Requests go through `bench.http_client.HttpPool`, not httpx: see that module for why.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.adapter import PublishError, System
from bench.http_client import HttpError, HttpPool

REQUEST_TIMEOUT = 30.0
MAX_BATCH = 1000  # the hub's API takes at most 1000 recipients per request
PUBLISH_MODES = ("bulk", "single")


def batch_size_for(rate: float, batch_interval: float, fixed: int = 0) -> int:
    """Notifications per request: `fixed`, or as many as `rate` makes in `batch_interval`."""
    size = fixed or round(rate * batch_interval)
    return max(1, min(MAX_BATCH, size))


class Recipients:
    """An endless, evenly spread sequence of the connected users' ids."""

    def __init__(self, user_ids: Sequence[int], seed: int = 1) -> None:
        if not user_ids:
            raise ValueError("no connected users to publish to")
        self.order = list(user_ids)
        random.Random(seed).shuffle(self.order)
        self.position = 0

    def take(self, count: int) -> list[int]:
        taken = []
        while len(taken) < count:
            chunk = self.order[self.position : self.position + count - len(taken)]
            taken.extend(chunk)
            self.position = (self.position + len(chunk)) % len(self.order)
        return taken


def notification(step: int, seq: int, sent_at: float) -> dict[str, Any]:
    """The notification every system carries; `data` comes back to the client unchanged."""
    return {
        "title": "Bench",
        "message": "A fan-out benchmark notification",
        "url": "/bench",
        "type": "bench",
        "data": {"sent_at": sent_at, "seq": seq, "step": step},
    }


@dataclass
class StepSend:
    """What the publisher did in one step."""

    requested: int = 0  # notifications (recipients) it tried to publish
    accepted: int = 0  # taken by the server (2xx)
    requests: int = 0  # requests answered 2xx
    asked_request_rate: float = 0.0  # requests/s the step's rate asks for
    errors: list[str] = field(default_factory=list)
    started_at: float = 0.0  # wall clock of the first batch's due time
    send_seconds: float = 0.0  # first due time → last answer
    worst_lag: float = 0.0  # the latest a batch left after its due time, seconds
    batch_size: int = 0


async def publish_step(
    system: System,
    http: HttpPool,
    recipients: Recipients,
    *,
    step: int,
    rate: float,
    duration: float,
    batch_size: int,
    max_in_flight: int,
) -> StepSend:
    """Publish `rate` notifications/s for `duration` s in batches of `batch_size`."""
    batches = max(1, round(rate * duration / batch_size))
    interval = batch_size / rate
    gate = asyncio.Semaphore(max_in_flight)
    result = StepSend(
        started_at=time.time(), batch_size=batch_size, asked_request_rate=rate / batch_size
    )
    started = time.perf_counter()

    async def send(user_ids: list[int], content: dict[str, Any]) -> None:
        try:
            taken = await system.publish(http, user_ids, content)
            result.accepted += taken  # after the await: `+= await` would lose concurrent counts
            result.requests += 1
        except (HttpError, PublishError, ValueError, KeyError) as exc:
            if len(result.errors) < 20:
                result.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            gate.release()

    tasks = []
    for k in range(batches):
        due = started + k * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        result.worst_lag = max(result.worst_lag, time.perf_counter() - due)
        user_ids = recipients.take(batch_size)
        result.requested += len(user_ids)
        content = notification(step, k, result.started_at + k * interval)
        tasks.append(asyncio.create_task(send(user_ids, content)))
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), REQUEST_TIMEOUT + 5)
    except TimeoutError:
        result.errors.append("some publish requests did not finish in time")
    result.send_seconds = time.perf_counter() - started
    return result
