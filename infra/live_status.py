"""Live status per product, summed over every hub process: open sockets, notifications
delivered per second over the last minute, and their publish-to-send latency.

`/metrics` answers for the process it reached; the console's status page has to show the
whole hub. So each process counts per product on its own (`DELIVERIES.record`, a dict
lookup and a list increment on the delivery path, ~0.3 µs) and every `SNAPSHOT_EVERY`
seconds writes a snapshot of the last minute to Redis, under a key of its own that lapses
after `SNAPSHOT_TTL` (a process that crashed stops counting within that time; one that
stops deletes its key). The page reads the live processes' snapshots and sums them; without
Redis (one process) it reads its own.

The latency is kept as the counts of the same buckets as `hub_publish_to_send_seconds`, so
snapshots add up, and the percentiles are interpolated within a bucket as Prometheus'
`histogram_quantile` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import uuid
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from redis import asyncio as aioredis

from infra.redis_clients import redis_client
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.status")

LATENCY_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SNAPSHOT_EVERY = 2.0
SNAPSHOT_TTL = 6.0
MINUTE_WINDOWS = 30  # of SNAPSHOT_EVERY seconds: one minute
MAX_PROCESSES_READ = 1000


class DeliveryCounters:
    """Deliveries and their latency per product, in windows of `SNAPSHOT_EVERY` seconds."""

    __slots__ = ("_current", "_current_since", "_past")

    def __init__(self) -> None:
        self._current: dict[int, list[int]] = {}
        self._current_since = time.monotonic()
        # (the window's counts, its length in seconds), oldest first.
        self._past: deque[tuple[dict[int, list[int]], float]] = deque(maxlen=MINUTE_WINDOWS - 1)

    def record(self, product_id: int, seconds: float) -> None:
        """One notification frame written to a socket of the product, `seconds` after its
        publish. On the delivery path: no lock, no allocation after a product's first."""
        counts = self._current.get(product_id)
        if counts is None:
            counts = self._current[product_id] = [0] * (len(LATENCY_BOUNDS) + 1)
        counts[bisect_left(LATENCY_BOUNDS, seconds)] += 1

    def rotate(self) -> None:
        """Close the current window (the oldest of the minute goes)."""
        now = time.monotonic()
        self._past.append((self._current, now - self._current_since))
        self._current, self._current_since = {}, now

    def last_minute(self) -> tuple[dict[int, list[int]], float]:
        """The latency counts per product over the windows kept, and the seconds they span."""
        seconds = time.monotonic() - self._current_since
        total: dict[int, list[int]] = {}
        for window, length in [*self._past, (self._current, 0.0)]:
            seconds += length
            for product_id, counts in window.items():
                into = total.setdefault(product_id, [0] * len(counts))
                for i, count in enumerate(counts):
                    into[i] += count
        return total, seconds


DELIVERIES = DeliveryCounters()


def percentile(counts: list[int], fraction: float) -> float | None:
    """The latency below which `fraction` of the deliveries fell (None without any); the
    last bucket has no upper bound, so a value there reads as its lower bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank = fraction * total
    seen = 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS[i - 1] if i > 0 else 0.0
            if i == len(LATENCY_BOUNDS):
                return lower
            return lower + (LATENCY_BOUNDS[i] - lower) * (rank - seen) / count
        seen += count
    return LATENCY_BOUNDS[-1]


@dataclass(frozen=True)
class ProcessRow:
    process: str
    host: str
    pid: int
    connections: int  # of the product asked about
    uptime: float
    at: float


@dataclass(frozen=True)
class ProductStatus:
    """One product's live numbers over every process that reported."""

    connections: int
    deliveries_per_second: float
    p50: float | None
    p99: float | None
    newest: float | None  # when the newest snapshot was taken (epoch seconds)
    processes: list[ProcessRow] = field(default_factory=list)


def summarize(snapshots: list[Mapping[str, Any]], product_id: int) -> ProductStatus:
    """Add up the snapshots' numbers of one product (the others' are not looked at)."""
    key = str(product_id)
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    connections, rate, rows = 0, 0.0, []
    for snapshot in snapshots:
        mine = snapshot["products"].get(key, {})
        sockets = int(mine.get("connections", 0))
        latency = mine.get("latency") or []
        for i, count in enumerate(latency[: len(counts)]):
            counts[i] += int(count)
        seconds = max(float(snapshot["seconds"]), SNAPSHOT_EVERY)
        rate += sum(int(c) for c in latency) / seconds
        connections += sockets
        rows.append(
            ProcessRow(
                process=snapshot["process"],
                host=snapshot["host"],
                pid=snapshot["pid"],
                connections=sockets,
                uptime=snapshot["at"] - snapshot["started_at"],
                at=snapshot["at"],
            )
        )
    rows.sort(key=lambda row: (row.host, row.process))
    return ProductStatus(
        connections=connections,
        deliveries_per_second=rate,
        p50=percentile(counts, 0.50),
        p99=percentile(counts, 0.99),
        newest=max((row.at for row in rows), default=None),
        processes=rows,
    )


class LiveStatus:
    """This process's snapshots (written every `SNAPSHOT_EVERY` seconds) and the reading of
    every live process's. `connections` returns this process's open sockets per product."""

    def __init__(
        self,
        redis_url: str | None,
        prefix: str,
        connections: Callable[[], Mapping[int, int]],
        counters: DeliveryCounters = DELIVERIES,
    ) -> None:
        self.process = uuid.uuid4().hex[:12]
        self._connections = connections
        self._counters = counters
        self._started_at = time.time()
        self._host = socket.gethostname()
        self._client = redis_client(redis_url, socket_timeout=2) if redis_url else None
        self._index = f"{prefix}:status:processes"
        self._key_prefix = f"{prefix}:status:"
        self._task: asyncio.Task[None] | None = None

    def snapshot(self) -> dict[str, Any]:
        latency, seconds = self._counters.last_minute()
        products: dict[str, dict[str, Any]] = {}
        for product_id, count in self._connections().items():
            products[str(product_id)] = {"connections": count}
        for product_id, counts in latency.items():
            products.setdefault(str(product_id), {"connections": 0})["latency"] = counts
        return {
            "process": self.process,
            "host": self._host,
            "pid": os.getpid(),
            "started_at": self._started_at,
            "at": time.time(),
            "seconds": seconds,
            "products": products,
        }

    async def start(self) -> None:
        if self._client is not None:
            self._task = asyncio.create_task(self._every_period(), name="live-status")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._client is not None:
            try:
                await self._client.delete(self._key_prefix + self.process)
                await self._client.zrem(self._index, self.process)
            except (aioredis.RedisError, OSError) as exc:
                logger.warning("could not withdraw the live status (%s); it lapses", exc)
            await self._client.aclose()

    async def _every_period(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY)
            self._counters.rotate()
            try:
                await self._publish()
            except (aioredis.RedisError, OSError) as exc:
                logger.warning("publishing the live status failed (%s)", exc)

    async def _publish(self) -> None:
        assert self._client is not None
        body = json.dumps(self.snapshot(), separators=(",", ":"))
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        pipe.set(self._key_prefix + self.process, body, px=int(SNAPSHOT_TTL * 1000))
        pipe.zadd(self._index, {self.process: now + SNAPSHOT_TTL})
        pipe.zremrangebyscore(self._index, "-inf", now - SNAPSHOT_TTL)
        await pipe.execute()

    async def snapshots(self) -> list[dict[str, Any]]:
        """Every live process's newest snapshot (this one's taken now); only this process's
        when Redis is not configured or does not answer."""
        own = self.snapshot()
        if self._client is None:
            return [own]
        try:
            processes = await self._client.zrangebyscore(
                self._index, time.time() - SNAPSHOT_TTL, "+inf", start=0, num=MAX_PROCESSES_READ
            )
            others = [p.decode() if isinstance(p, bytes) else p for p in processes]
            others = [p for p in others if p != self.process]
            pipe = self._client.pipeline(transaction=False)
            for process in others:
                pipe.get(self._key_prefix + process)
            found = await pipe.execute() if others else []
        except (aioredis.RedisError, OSError) as exc:
            logger.warning("reading the live status failed (%s); this process only", exc)
            return [own]
        # A key gone (lapsed, withdrawn) is a process that no longer runs.
        return [own, *(json.loads(raw) for raw in found if raw)]

    async def product(self, product_id: int) -> ProductStatus:
        return summarize(await self.snapshots(), product_id)
