"""What `GET /metrics` reports, in Prometheus' text format.

Each hub process keeps its own numbers (a scrape sees the process it reached); run one scrape
target per process, or sum them in your Prometheus queries.
"""

from __future__ import annotations

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # RSS, CPU seconds, open files

CONNECTIONS = Gauge("hub_cable_connections", "Open cable WebSockets.", registry=REGISTRY)
SUBSCRIPTIONS = Gauge(
    "hub_cable_subscriptions", "Channel subscriptions of the open sockets.", registry=REGISTRY
)
FRAMES_SENT = Counter(
    "hub_cable_frames_sent", "Frames written to cable sockets.", registry=REGISTRY
)
CABLE_ACTIONS_RATE_LIMITED = Counter(
    "hub_cable_actions_rate_limited",
    "Cable actions dropped because their socket exceeded its action rate.",
    registry=REGISTRY,
)
CABLE_SOCKETS_REFUSED = Counter(
    "hub_cable_sockets_refused",
    "Cable sockets refused because their user already had the most allowed.",
    registry=REGISTRY,
)
NOTIFICATIONS_SENT = Counter(
    "hub_notifications_sent", "Notifications stored and published.", registry=REGISTRY
)
PUBLISH_WAITING = Gauge(
    "hub_publish_waiting",
    "Publish requests queued for the next group commit (a batch is being stored).",
    registry=REGISTRY,
)
PUBLISH_BATCH = Histogram(
    "hub_publish_batch_requests",
    "Publish requests stored per group commit (one transaction, one broker round trip).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
PUBLISH_TO_SEND = Histogram(
    "hub_publish_to_send_seconds",
    "From a notification's publish (after its commit) to its frame written to a socket.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "hub_auth_failures", "401 and 403 answers, by error code.", ["code"], registry=REGISTRY
)
RATE_LIMITED = Counter("hub_rate_limit_hits", "Requests refused with 429.", registry=REGISTRY)
ALERT_WEBHOOKS_REFUSED = Counter(
    "hub_alert_webhooks_refused",
    "Alert webhooks not sent because their target is (or resolves) inside the hub's network.",
    registry=REGISTRY,
)
BROKER_RECONNECTS = Counter(
    "hub_broker_reconnects",
    "Times the Redis pub/sub connection was re-established.",
    registry=REGISTRY,
)


def exposition() -> tuple[bytes, str]:
    """The current metrics and their content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# Collector pauses: 1 ms … 1 s, with the 20 ms the hub aims to stay under.
GC_PAUSE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
GC_GENERATIONS = (0, 1, 2)


class CollectorPauses(Collector):
    """Times every garbage collection from `gc.callbacks`, per generation, and reports them
    at scrape time (`hub_gc_pause_seconds`, `…_max`, `hub_gc_collections_total`) with the
    collector's object counts.

    The callback runs inside whatever allocation triggered the collection, so it only does
    arithmetic on its own lists: a prometheus_client metric takes a lock, and a collection
    triggered while that lock is held would wait on it forever.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._buckets = {g: [0] * (len(GC_PAUSE_BUCKETS) + 1) for g in GC_GENERATIONS}
        self._sum = dict.fromkeys(GC_GENERATIONS, 0.0)
        self._max = dict.fromkeys(GC_GENERATIONS, 0.0)

    def install(self) -> None:
        """Start timing collections in this process (once, however often it is called)."""
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._buckets[generation][bisect_left(GC_PAUSE_BUCKETS, pause)] += 1
        self._sum[generation] += pause
        if pause > self._max[generation]:
            self._max[generation] = pause

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "hub_gc_pause_seconds",
            "Garbage collection pauses (the whole process waits), by generation.",
            labels=["generation"],
        )
        longest = GaugeMetricFamily(
            "hub_gc_pause_seconds_max",
            "The longest garbage collection pause since the hub started serving, by generation.",
            labels=["generation"],
        )
        collections = CounterMetricFamily(
            "hub_gc_collections",
            "Garbage collections, by generation.",
            labels=["generation"],
        )
        for generation in GC_GENERATIONS:
            label = [str(generation)]
            counts, cumulative, buckets = self._buckets[generation], 0, []
            for bound, count in zip((*GC_PAUSE_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            pauses.add_metric(label, buckets, self._sum[generation])
            longest.add_metric(label, self._max[generation])
            collections.add_metric(label, cumulative)
        yield pauses
        yield longest
        yield collections
        yield GaugeMetricFamily(
            "hub_gc_frozen_objects",
            "Objects frozen out of garbage collection (gc.freeze); see infra/gc_policy.py.",
            value=gc.get_freeze_count(),
        )
        yield GaugeMetricFamily(
            "hub_gc_tracked_objects",
            "Objects a full garbage collection walks: tracked by the collector, not frozen.",
            value=sum(len(gc.get_objects(generation)) for generation in GC_GENERATIONS),
        )


GC_PAUSES = CollectorPauses()
REGISTRY.register(GC_PAUSES)
