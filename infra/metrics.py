"""What `GET /metrics` reports, in Prometheus' text format.

Each hub process keeps its own numbers (a scrape sees the process it reached); run one scrape
target per process, or sum them in your Prometheus queries.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

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
