"""The live status arithmetic (`infra.live_status`), without processes: percentiles from the
shared buckets, one product's numbers summed over snapshots without the others', the minute's
windows, and what a delivery costs on the hot path."""

from __future__ import annotations

import timeit

from infra.live_status import (
    LATENCY_BOUNDS,
    MINUTE_WINDOWS,
    DeliveryCounters,
    percentile,
    summarize,
)


def _counts(**at: int) -> list[int]:
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    for index, count in at.items():
        counts[int(index[1:])] = count
    return counts


def test_percentiles_interpolate_within_a_bucket_and_need_deliveries():
    assert percentile(_counts(), 0.5) is None
    # 100 deliveries between 5 and 10 ms: the median half way.
    assert abs(percentile(_counts(b3=100), 0.5) - 0.0075) < 1e-9
    # Beyond the last bound there is no upper end: its lower bound is said.
    assert percentile(_counts(b12=1), 0.99) == LATENCY_BOUNDS[-1]


def test_one_products_numbers_are_summed_over_processes_and_no_others():
    def snapshot(process: str, products: dict) -> dict:
        return {
            "process": process,
            "host": "h",
            "pid": 1,
            "started_at": 100.0,
            "at": 160.0,
            "seconds": 60.0,
            "products": products,
        }

    snapshots = [
        snapshot("a", {"7": {"connections": 2, "latency": _counts(b2=60)}}),
        snapshot(
            "b", {"7": {"connections": 1, "latency": _counts(b2=60)}, "8": {"connections": 50}}
        ),
    ]
    status = summarize(snapshots, 7)
    assert status.connections == 3
    assert status.deliveries_per_second == 2.0
    assert status.p50 is not None and 0.0025 < status.p50 < 0.005
    assert [row.connections for row in status.processes] == [2, 1]
    assert status.processes[0].uptime == 60.0
    other = summarize(snapshots, 9)
    assert other.connections == 0 and other.deliveries_per_second == 0 and other.p50 is None


def test_the_counters_keep_one_minute_of_windows():
    counters = DeliveryCounters()
    counters.record(7, 0.003)
    for _ in range(MINUTE_WINDOWS + 5):
        counters.rotate()
    counters.record(7, 0.003)
    latency, _ = counters.last_minute()
    assert sum(latency[7]) == 1  # the first one left the minute


def test_a_delivery_costs_about_a_microsecond_at_most():
    counters = DeliveryCounters()
    runs = timeit.repeat(lambda: counters.record(7, 0.004), number=100_000, repeat=5)
    # ~0.25 µs on an idle core (plus the lambda); generous for a busy test machine.
    assert min(runs) / 100_000 < 5e-6
