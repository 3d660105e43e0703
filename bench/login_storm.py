"""The login/register storm: argon2-bound auth at full tilt, and what it does to the cable.

1. The machine's raw argon2id rate: verifications per second on one core, with the hub's own
   parameters (m = 19 MiB, t = 2, p = 1), in this process.
2. One `notification-hub serve` (the fan-out bench's Hub: its database, Redis, a `bench`
   product), N users registered through `POST /api/v1/auth/register` (timed: registrations/s).
3. A listener: one user's socket subscribed to NotificationsChannel, and a publisher sending it
   a notification every 1/`--notify-rate` s through the server API; each one's publish →
   arrival time is recorded. Idle first, then during the storm.
4. The storm: `--concurrency` clients logging the N users in, round-robin, for `--duration` s.

Printed: logins/s against the target (80 % of cores × the raw rate: hashing runs in a thread
pool, so every core can hash), and the cable's p50/p99 idle and during the storm (target:
p99 during ≤ 2× idle, because hashing never blocks the event loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Sequence

from argon2 import PasswordHasher
from websockets.asyncio.client import connect

from bench.adapter import add_server_options
from bench.http_client import HttpPool
from bench.hub_adapter import Hub, run_with_hub

PASSWORD = "Storm-Password-123"
IDENTIFIER = json.dumps({"channel": "NotificationsChannel"})


def raw_argon2_rate(seconds: float = 3.0) -> float:
    """argon2id verifications per second on one core, the hub's parameters."""
    hasher = PasswordHasher(memory_cost=19 * 1024, time_cost=2, parallelism=1)
    digest = hasher.hash(PASSWORD)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        hasher.verify(digest, PASSWORD)
        done += 1
    return done / (time.perf_counter() - started)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


class CableProbe:
    """One subscribed socket and a steady publisher; latencies per phase."""

    def __init__(self, hub: Hub, http: HttpPool, rate: float) -> None:
        self.hub, self.http, self.interval = hub, http, 1.0 / rate
        self.phase = "idle"
        self.latencies: dict[str, list[float]] = {"idle": [], "storm": []}
        self.sent: dict[str, int] = {"idle": 0, "storm": 0}

    async def run(self, stop: asyncio.Event) -> None:
        [credential] = await self.hub.provision(self.http, 1)
        url = self.hub.ws_url(credential.token)
        async with connect(url, subprotocols=["actioncable-v1-json"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"command": "subscribe", "identifier": IDENTIFIER}))
            receiver = asyncio.create_task(self._receive(ws))
            try:
                while not stop.is_set():
                    content = {
                        "title": "probe",
                        "data": {"sent_at": time.time(), "phase": self.phase},
                    }
                    await self.hub.publish(self.http, [credential.user_id], content)
                    self.sent[self.phase] += 1
                    await asyncio.sleep(self.interval)
                await asyncio.sleep(1.0)  # the last ones in flight
            finally:
                receiver.cancel()

    async def _receive(self, ws) -> None:  # type: ignore[no-untyped-def]
        async for raw in ws:
            frame = json.loads(raw)
            if "message" not in frame or not isinstance(frame["message"], str):
                continue
            message = json.loads(frame["message"])
            if message.get("action") != "new_notification":
                continue
            data = message["notification"]["data"]
            self.latencies[data["phase"]].append(time.time() - data["sent_at"])


async def register_all(hub: Hub, http: HttpPool, count: int, concurrency: int) -> float:
    """Register `count` users; registrations per second."""
    gate = asyncio.Semaphore(concurrency)
    url = f"{hub.http_base}/api/v1/auth/register"

    async def one(i: int) -> None:
        async with gate:
            response = await http.post(
                url,
                headers={"X-Product-Slug": "bench"},
                json={
                    "email": f"storm-{i}@example.com",
                    "password": PASSWORD,
                    "password_confirmation": PASSWORD,
                    "organization_name": f"Org {i}",
                },
            )
            if response.status_code != 201:
                raise RuntimeError(f"register: {response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return count / (time.perf_counter() - started)


async def storm(
    hub: Hub, http: HttpPool, users: int, concurrency: int, seconds: float
) -> tuple[int, int, float]:
    """Log users in from `concurrency` clients for `seconds`; (ok, failed, elapsed)."""
    url = f"{hub.http_base}/api/v1/auth/login"
    deadline = time.perf_counter() + seconds
    ok = failed = 0
    counter = iter(range(10**9))

    async def client() -> None:
        nonlocal ok, failed
        while time.perf_counter() < deadline:
            i = next(counter) % users
            response = await http.post(
                url,
                headers={"X-Product-Slug": "bench"},
                json={"email": f"storm-{i}@example.com", "password": PASSWORD},
            )
            if response.status_code == 200:
                ok += 1
            else:
                failed += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return ok, failed, time.perf_counter() - started


async def run(args: argparse.Namespace, hub: Hub) -> None:
    async with HttpPool(hub.http_base, size=args.concurrency + 8, timeout=60) as http:
        print(f"registering {args.users} users …", flush=True)
        registrations = await register_all(hub, http, args.users, args.concurrency)
        print(f"   {registrations:.1f} registrations/s", flush=True)

        stop = asyncio.Event()
        probe = CableProbe(hub, http, args.notify_rate)
        probing = asyncio.create_task(probe.run(stop))
        await asyncio.sleep(args.idle)
        probe.phase = "storm"
        cpu_before = hub.process.cpu_seconds()
        ok, failed, elapsed = await storm(hub, http, args.users, args.concurrency, args.duration)
        server_cores = (hub.process.cpu_seconds() - cpu_before) / elapsed
        stop.set()
        await probing

    cores = os.cpu_count() or 1
    raw = args.raw_rate
    target = 0.8 * cores * raw
    rate = ok / elapsed
    idle, during = probe.latencies["idle"], probe.latencies["storm"]
    idle_p99, storm_p99 = percentile(idle, 0.99) * 1000, percentile(during, 0.99) * 1000
    print()
    print(
        f"raw argon2id (m=19 MiB, t=2, p=1): {raw:.1f} verifications/s on one core; {cores} cores"
    )
    print(
        f"logins: {rate:.1f}/s over {elapsed:.1f} s ({ok} ok, {failed} refused), "
        f"server {server_cores:.2f} cores; target ≥ 80 % × {cores} × {raw:.1f} = {target:.1f}/s "
        f"→ {rate / target * 100:.0f} % of target "
        f"({rate / (cores * raw) * 100:.0f} % of cores × raw)"
    )
    print(f"registrations: {registrations:.1f}/s")
    for name, values in (("idle", idle), ("storm", during)):
        sent = probe.sent[name]
        print(
            f"cable delivery {name:5}: {len(values)}/{sent} delivered, "
            f"p50 {statistics.median(values) * 1000 if values else float('nan'):.1f} ms, "
            f"p99 {percentile(values, 0.99) * 1000:.1f} ms"
        )
    ratio = storm_p99 / idle_p99 if idle_p99 else float("nan")
    verdict = "met" if ratio <= 2 else "MISSED"
    print(f"p99 during the storm / idle: {ratio:.2f}× (target ≤ 2×: {verdict})")
    print(f"logins/s target: {'met' if rate >= target else 'MISSED'}")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run login-storm",
        description="Login/register storm against the hub, and the cable's latency meanwhile.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--users", type=int, default=100, help="accounts registered, then logged in"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="clients at once")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of login storm")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle cable probe")
    parser.add_argument("--notify-rate", type=float, default=20.0, help="probe notifications/s")
    add_server_options(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print("measuring the raw argon2id rate on one core …", flush=True)
    args.raw_rate = raw_argon2_rate()
    run_with_hub(args, "login-storm-", run)
