"""The fan-out benchmark run: every system in turn, the same client, the same steps.

For each system: start its server, create the users and their tokens, send one notification
end to end (the probe), measure the server's RSS, connect and subscribe every user through the
load client (wall clock), measure RSS again once idle, publish a short unjudged warm-up at the
first rate, then publish per-user notifications at rising rates through the system's
server-side HTTP path and count what arrives and how late. A step passes when nothing is lost
and p99 ≤ the limit; the run of a system stops at its first failing step.
Servers and client workers are stopped at the end, on errors and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import signal
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import psutil
from websockets.asyncio.client import connect

from bench.adapter import (
    BENCH_DIR,
    Credential,
    RunOptions,
    ServerFailed,
    System,
    SystemUnavailable,
    add_server_options,
)
from bench.client import ClientPool, raise_nofile
from bench.hub_adapter import Hub
from bench.peer_adapters import DjangoChannels, PythonSocketIO
from bench.publisher import Recipients, batch_size_for, notification, publish_step
from bench.report import (
    StepResult,
    SystemResult,
    judge,
    percentile,
    save,
    summary_table,
    system_block,
    targets,
)

SYSTEMS: dict[str, type[System]] = {
    "hub": Hub,
    "socketio": PythonSocketIO,
    "django": DjangoChannels,
}
DEFAULT_RATES = "200,500,1000,2000,5000,10000,15000,20000"
QUICK = {
    "users": 500,
    "rates": "200,500,1000,2000,5000",
    "duration": 3.0,
    "settle": 2.0,
    "warmup": 1.0,
}
PROBE_TIMEOUT = 15.0
PROBE_STEP = -1  # the step id of the one end-to-end notification before measuring
STEP_PAUSE = 1.0
DRAIN_POLL = 0.1
BUSY_PERCENT = 20.0  # CPU use by others above which a run is flagged as noisy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fan-out benchmark: notification-hub vs python-socketio vs Django Channels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--systems", default="hub,socketio,django", help="comma-separated, in order"
    )
    parser.add_argument("--users", type=int, default=5000, help="connections, one user each")
    parser.add_argument("--rates", default=DEFAULT_RATES, help="notifications/s, rising")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per rate step")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 users, short steps")
    parser.add_argument(
        "--p99-ms", type=float, default=50.0, help="latency limit of a passing step"
    )
    parser.add_argument(
        "--batch-interval", type=float, default=0.02, help="seconds between publish requests"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=0,
        help="fixed notifications per request (default: by interval)",
    )
    parser.add_argument("--max-in-flight", type=int, default=16, help="concurrent publish requests")
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unjudged publishing at the first rate"
    )
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before RSS")
    parser.add_argument("--client-procs", type=int, default=2, help="load-client worker processes")
    parser.add_argument("--connect-concurrency", type=int, default=200, help="handshakes at once")
    parser.add_argument("--deflate", action="store_true", help="offer permessage-deflate")
    parser.add_argument(
        "--retries", type=int, default=1, help="times a failing rate is tried again before stopping"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="try every rate even after a fail"
    )
    add_server_options(parser)
    parser.add_argument(
        "--keep-work", action="store_true", help="keep databases and server logs in bench/results/"
    )
    parser.add_argument("--results", type=Path, help="JSON results file (default bench/results/)")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if parser.get_default(name) == getattr(args, name):
                setattr(args, name, type(getattr(args, name))(value))
    args.rates = sorted(int(r) for r in args.rates.split(",") if r.strip())
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    if args.users < 1 or not args.rates or min(args.rates) < 1:
        parser.error("--users and every rate must be positive")
    return args


async def _provision(system: System, users: int) -> list[Credential]:
    async with httpx.AsyncClient(timeout=60) as http:
        return await system.provision(http, users)


async def _probe(system: System, user_id: int, token: str) -> None:
    """One user, one notification, end to end: proves the path works before measuring."""
    async with connect(
        system.ws_url(token), subprotocols=system.protocol.subprotocols, compression=None
    ) as ws:
        await asyncio.wait_for(system.protocol.subscribe(ws, token), PROBE_TIMEOUT)
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as http:
            await system.publish(http, [user_id], notification(PROBE_STEP, 0, time.time()))
        async with asyncio.timeout(PROBE_TIMEOUT):
            async for frame in ws:
                reply, data = system.protocol.on_frame(frame)
                if reply is not None:
                    await ws.send(reply)
                if data is not None and data.get("step") == PROBE_STEP:
                    return
    raise RuntimeError("probe: the connection closed before the notification arrived")


async def _measure_step(
    system: System,
    pool: ClientPool,
    http: httpx.AsyncClient,
    recipients: Recipients,
    args: argparse.Namespace,
    *,
    step_id: int,
    rate: int,
    duration: float,
) -> StepResult:
    """Publish at `rate` for `duration`, wait for stragglers, and count what arrived when."""
    server_cpu, client_cpu = system.process.cpu_seconds(), pool.cpu_seconds()
    own_cpu = time.process_time()
    sent = await publish_step(
        system, http, recipients,
        step=step_id, rate=rate, duration=duration,
        batch_size=batch_size_for(rate, args.batch_interval, args.batch_size),
        max_in_flight=args.max_in_flight,
    )  # fmt: skip
    for _ in range(max(1, round(args.drain / DRAIN_POLL))):
        if pool.stats(step_id).count >= sent.accepted:
            break
        await asyncio.sleep(DRAIN_POLL)
    elapsed = time.time() - sent.started_at
    got = pool.stats(step_id, take=True)
    ordered = sorted(got.latencies)
    step = StepResult(
        rate=rate,
        sent=sent.accepted,
        delivered=got.count,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] * 1000) if ordered else 0.0,
        send_rate=sent.accepted / max(sent.send_seconds, 1e-9),
        delivered_rate=got.count / max(got.last_seen - sent.started_at, 1e-9),
        server_cpu=(system.process.cpu_seconds() - server_cpu) / elapsed,
        client_cpu=(pool.cpu_seconds() - client_cpu) / elapsed,
        publisher_cpu=(time.process_time() - own_cpu) / elapsed,
        batch_size=sent.batch_size,
        publisher_lag_ms=sent.worst_lag * 1000,
        errors=sent.errors,
        server_rss=system.process.rss(),
    )
    judge(step, args.p99_ms)
    return step


async def _run_steps(
    system: System, pool: ClientPool, user_ids: list[int], args: argparse.Namespace
) -> list[StepResult]:
    """An unjudged warm-up at the first rate, then the rising rates until one fails (twice)."""
    recipients = Recipients(user_ids)
    limits = httpx.Limits(
        max_connections=args.max_in_flight, max_keepalive_connections=args.max_in_flight
    )
    steps: list[StepResult] = []
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        if args.warmup > 0:
            step = await _measure_step(
                system, pool, http, recipients, args,
                step_id=0, rate=args.rates[0], duration=args.warmup,
            )  # fmt: skip
            print(f"   {system.name:8} warm-up {_step_progress(step)}", flush=True)
            await asyncio.sleep(STEP_PAUSE)
        step_ids = itertools.count(1)
        for rate in args.rates:
            for attempt in range(1 + args.retries):
                step = await _measure_step(
                    system, pool, http, recipients, args,
                    step_id=next(step_ids), rate=rate, duration=args.duration,
                )  # fmt: skip
                steps.append(step)
                print(f"   {system.name:8} {_step_progress(step)}", flush=True)
                await asyncio.sleep(STEP_PAUSE)
                if step.ok:
                    break
                if attempt < args.retries:
                    step.why += "; trying this rate again"
            if not step.ok and not args.keep_going:
                break
    return steps


def _step_progress(step: StepResult) -> str:
    return (
        f"{step.rate:>6}/s: {step.delivered}/{step.sent} delivered, p50 {step.p50_ms:.1f} ms, "
        f"p99 {step.p99_ms:.1f} ms, server {step.server_cpu:.2f} cores → {step.why}"
    )


def _busy_warning() -> str | None:
    """A warning when other work keeps the CPUs busy: the figures would be noisy."""
    busy = psutil.cpu_percent(interval=1.0)
    if busy < BUSY_PERCENT:
        return None
    return f"the machine was {busy:.0f}% busy with other work before this system ran"


def _start_and_provision(system: System, users: int) -> list[Credential]:
    """Start the server, create the users and their tokens, and send one probe through."""
    system.start()
    print(f"   server up on port {system.port}; creating {users} users", flush=True)
    started = time.perf_counter()
    credentials = asyncio.run(_provision(system, users))
    print(f"   users and tokens ready in {time.perf_counter() - started:.1f} s", flush=True)
    asyncio.run(_probe(system, credentials[0].user_id, credentials[0].token))
    return credentials


def _connect_all(
    system: System,
    pool: ClientPool,
    credentials: list[Credential],
    result: SystemResult,
    args: argparse.Namespace,
) -> list[int]:
    """Connect and subscribe everyone (timed), then measure the idle server; connected ids."""
    time.sleep(1)
    result.rss_before = system.process.rss()
    connected = pool.connect([c.token for c in credentials], args.connect_concurrency)
    result.connected = len(connected.connected)
    result.connect_seconds = connected.elapsed
    result.connect_errors = connected.errors[:10]
    print(
        f"   {result.connected}/{args.users} connected and subscribed in {connected.elapsed:.2f} s",
        flush=True,
    )
    if not result.connected:
        raise RuntimeError(f"no user could connect: {connected.errors[:3]}")
    idle_cpu = system.process.cpu_seconds()
    time.sleep(args.settle)
    result.idle_cpu = (system.process.cpu_seconds() - idle_cpu) / args.settle
    result.rss_idle = system.process.rss()
    print(
        f"   {result.kb_per_connection:.1f} KB RSS per idle connection; "
        f"idle server CPU {result.idle_cpu:.2f} cores",
        flush=True,
    )
    return [credentials[i].user_id for i in connected.connected]


def _report_failure(system: System, exc: Exception, result: SystemResult) -> None:
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    result.error = f"{type(exc).__name__}: {first_line}"
    print(f"   failed: {result.error}", flush=True)
    if not isinstance(exc, ServerFailed):
        where = "".join(traceback.format_exception(exc)[-6:])
        print(textwrap.indent(where, "     "), flush=True)
    if system.server is not None:
        tail = textwrap.indent(system.server.log_tail(), "     ")
        print(f"   server log ({system.server.log_path}), last lines:\n{tail}", flush=True)


def run_system(name: str, options: RunOptions, args: argparse.Namespace) -> SystemResult:
    """Everything for one system; its server and client workers are stopped whatever happens."""
    system = SYSTEMS[name](options)
    result = SystemResult(name=name, title=system.describe(), users=args.users)
    pool: ClientPool | None = None
    print(f"\n-- {name}: {result.title}", flush=True)
    result.warning = _busy_warning()
    if result.warning:
        print(f"   warning: {result.warning}; figures will be noisy", flush=True)
    try:
        credentials = _start_and_provision(system, args.users)
        pool = ClientPool(args.client_procs, system.protocol, system.ws_base, args.deflate)
        pool.start(len(credentials))
        user_ids = _connect_all(system, pool, credentials, result, args)
        result.steps = asyncio.run(_run_steps(system, pool, user_ids, args))
        result.dropped = pool.dropped()
    except SystemUnavailable as exc:
        result.error = str(exc)
        result.unavailable = True
        print(f"   not measured: {exc}", flush=True)
    except Exception as exc:
        _report_failure(system, exc, result)
    finally:
        if pool is not None:
            pool.close()
        system.stop()
    return result


@contextlib.contextmanager
def _work_directory(run_id: str, keep: bool) -> Iterator[Path]:
    """Databases, keys and server logs of the run: temporary, or kept under bench/results/."""
    if keep:
        path = BENCH_DIR / "results" / f"work-{run_id}"
        path.mkdir(parents=True)
        print(f"work directory (kept): {path}", flush=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="fanout-bench-") as path:
        yield Path(path)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # The servers are our children and inherit this limit: each needs a descriptor per user.
    raise_nofile(args.users + 512)
    run_id = uuid.uuid4().hex[:8]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_path = args.results or BENCH_DIR / "results" / f"fanout-{stamp}.json"
    batching = (
        f"batches of {args.batch_size}"
        if args.batch_size
        else f"a batch every {args.batch_interval * 1000:g} ms"
    )
    print(
        f"fan-out bench {run_id}: {', '.join(args.systems)}; {args.users} users; rates "
        f"{args.rates}/s, {args.duration:g} s each; {batching}; "
        f"p99 limit {args.p99_ms:g} ms; {args.client_procs} client processes",
        flush=True,
    )
    results: list[SystemResult] = []
    with _work_directory(run_id, args.keep_work) as workdir:
        options = RunOptions.from_args(args, workdir, run_id)
        try:
            for name in args.systems:
                results.append(run_system(name, options, args))
        except KeyboardInterrupt:
            print("\ninterrupted: servers and clients stopped", file=sys.stderr)
            raise SystemExit(130) from None

    print()
    for result in results:
        print(system_block(result, args.p99_ms) + "\n")
    print("== summary\n" + summary_table(results) + "\n")
    print("== targets (issue: one hub process publishing through its own HTTP API)")
    for line in targets(results):
        print("   " + line)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with contextlib.suppress(OSError):
        save(results, {"run_id": run_id, **settings}, results_path)
        print(f"\nresults saved to {results_path}")
