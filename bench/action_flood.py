"""The action flood: one user's sockets hammer the cable with actions; another user's latency.

1. One `notification-hub serve` (the fan-out bench's Hub: its database, Redis, a `bench`
   product).
2. A probe (the login-storm bench's CableProbe): one user's socket subscribed to
   NotificationsChannel and a notification to it every 1/`--notify-rate` s through the server
   API; each one's publish → arrival time is recorded. Idle first, then during the flood.
3. The flood: `--sockets` sockets of one other user, each sending `mark_all_read` as fast as
   it can for `--duration` s (each one is a SQL UPDATE and a broadcast to all the user's tabs
   when it is let through), reconnecting whenever the hub closes one for flooding.

Printed: actions sent and answered, sockets closed for flooding, and the probe's p50/p99 idle
and during the flood. Compare with the limits out of the way (what the hub did before it had
them): `HUB_CABLE_ACTIONS_PER_SECOND=1000000 HUB_CABLE_ACTION_BURST=1000000 bench/run
action-flood` (the hub inherits HUB_* variables from the environment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import statistics
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.adapter import add_server_options
from bench.http_client import HttpPool
from bench.hub_adapter import Hub, run_with_hub
from bench.login_storm import IDENTIFIER, CableProbe, percentile

MARK_ALL_READ = json.dumps(
    {"command": "message", "identifier": IDENTIFIER, "data": '{"action":"mark_all_read"}'}
)


class Flood:
    """`sockets` sockets of one user sending mark_all_read flat out until `stop`."""

    def __init__(self, url: str, sockets: int) -> None:
        self.url, self.sockets = url, sockets
        self.sent = self.answered = self.rate_limited = self.closed_for_flooding = 0

    async def _drain(self, ws) -> None:  # type: ignore[no-untyped-def]
        async for raw in ws:
            frame = json.loads(raw)
            if frame.get("type") == "disconnect":
                self.closed_for_flooding += 1
            elif isinstance(frame.get("message"), str):
                action = json.loads(frame["message"]).get("action")
                if action == "all_read":
                    self.answered += 1
                elif action == "error":
                    self.rate_limited += 1

    async def _socket(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with connect(self.url, subprotocols=["actioncable-v1-json"]) as ws:  # type: ignore[list-item]
                await ws.send(json.dumps({"command": "subscribe", "identifier": IDENTIFIER}))
                draining = asyncio.create_task(self._drain(ws))
                with contextlib.suppress(ConnectionClosed):
                    while not stop.is_set():
                        await ws.send(MARK_ALL_READ)
                        self.sent += 1
                        await asyncio.sleep(0)  # let the drain and the probe run
                draining.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await draining

    async def run(self, seconds: float) -> None:
        stop = asyncio.Event()
        sockets = asyncio.gather(*(self._socket(stop) for _ in range(self.sockets)))
        await asyncio.sleep(seconds)
        stop.set()
        with contextlib.suppress(TimeoutError, ConnectionClosed, OSError):
            await asyncio.wait_for(sockets, 10)  # a send may wait on a hub that reads slowly


def _flood_in_own_process(url: str, sockets: int, seconds: float, results: Any) -> None:
    """The flood, in a process of its own: its sending must not slow the probe's receiving
    (in one process the flooders' loop would delay the probe's timestamps, not the hub)."""
    flood = Flood(url, sockets)
    asyncio.run(flood.run(seconds))
    results.put((flood.sent, flood.answered, flood.rate_limited, flood.closed_for_flooding))


async def run(args: argparse.Namespace, hub: Hub) -> None:
    async with HttpPool(hub.http_base, timeout=60) as http:
        [flooder] = await hub.provision(http, 1)
        stop_probe = asyncio.Event()
        probe = CableProbe(hub, http, args.notify_rate)
        probing = asyncio.create_task(probe.run(stop_probe))
        await asyncio.sleep(args.idle)
        probe.phase = "storm"
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        flooding = spawn.Process(
            target=_flood_in_own_process,
            args=(hub.ws_url(flooder.token), args.sockets, args.duration, results),
        )
        started, cpu_before = time.perf_counter(), hub.process.cpu_seconds()
        flooding.start()
        await asyncio.sleep(args.duration)
        server_cores = (hub.process.cpu_seconds() - cpu_before) / args.duration
        rss_mib = hub.process.rss() / 2**20
        sent, answered, rate_limited, closed = await asyncio.to_thread(results.get)
        await asyncio.to_thread(flooding.join)
        elapsed = time.perf_counter() - started
        stop_probe.set()
        await probing

    print()
    print(
        f"flood: {args.sockets} sockets of one user, {sent} mark_all_read in "
        f"{elapsed:.1f} s ({sent / elapsed:.0f}/s); {answered} all_read frames "
        f"received, {rate_limited} rate_limited answers, "
        f"{closed} sockets closed for flooding; hub: {server_cores:.2f} "
        f"cores, RSS {rss_mib:.0f} MiB at the end of the flood"
    )
    for name, label in (("idle", "idle "), ("storm", "flood")):
        values, sent = probe.latencies[name], probe.sent[name]
        p50 = statistics.median(values) * 1000 if values else float("nan")
        print(
            f"another user's delivery, {label}: {len(values)}/{sent} delivered, "
            f"p50 {p50:.1f} ms, p99 {percentile(values, 0.99) * 1000:.1f} ms"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run action-flood",
        description="One user floods the cable with actions; another user's latency meanwhile.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--sockets", type=int, default=5, help="flooding sockets (one user)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of flood")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle probe first")
    parser.add_argument("--notify-rate", type=float, default=20.0, help="probe notifications/s")
    add_server_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    run_with_hub(args, "action-flood-", run)
