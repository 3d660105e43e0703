"""The fan-out benchmark run: every system in turn, the same client, the same steps.

First the publisher's self-check (bench.selfcheck: the requests/s it drives against a trivial
endpoint, so that no publishing figure near it is taken for a server's). Then for each system:
start its server, create the users and their tokens, send one notification end to end (the
probe), measure the server's RSS, connect and subscribe every user through the load client
(wall clock), measure RSS again once idle, and for each publishing mode (bulk, then one
request per notification) publish a short unjudged warm-up at the mode's first rate, then
per-user notifications at rising rates through the system's server-side HTTP path, counting
what arrives and how late. A step passes when nothing is lost, the publisher sent what the
rate asked and p99 ≤ the limit; a mode's ladder stops at its first failing rate. Last, the
server's collector pauses when it exposes them. Servers and client workers are stopped at the
end, on errors and on Ctrl-C.
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

import psutil
from websockets.asyncio.client import connect

from bench import loop
from bench.adapter import (
    BENCH_DIR,
    Credential,
    RunOptions,
    ServerFailed,
    System,
    SystemUnavailable,
    add_server_options,
)
from bench.chart import save_chart
from bench.client import ClientPool, raise_nofile
from bench.http_client import HttpPool
from bench.hub_adapter import Hub
from bench.peer_adapters import Ceiling, DjangoChannels, PythonSocketIO
from bench.publisher import (
    PUBLISH_MODES,
    Recipients,
    batch_size_for,
    notification,
    publish_step,
)
from bench.report import (
    StepResult,
    SystemResult,
    judge,
    percentile,
    ratios,
    save,
    summary_table,
    system_block,
    targets,
)
from bench.selfcheck import publisher_ceiling

SYSTEMS: dict[str, type[System]] = {
    "hub": Hub,
    "ceiling": Ceiling,
    "socketio": PythonSocketIO,
    "django": DjangoChannels,
}
# 4,000/s is the hub's bulk target, so it is a step of its own.
DEFAULT_RATES = "200,500,1000,2000,3000,4000,5000,10000,15000,20000"
DEFAULT_SINGLE_RATES = "500,1000,2000,3000,4000"
QUICK = {
    "users": 500,
    "rates": "200,500,1000,2000,5000",
    "single_rates": "200,500,1000,2000",
    "duration": 3.0,
    "settle": 2.0,
    "warmup": 1.0,
}
USERS_PER_CLIENT_PROC = 5000  # --client-procs 0: one load-client process per this many users
SELFCHECK_SECONDS = 2.0
# Descriptors a server needs besides its users' sockets: publisher and provisioning
# connections, SQL and Redis pools, logs.
FD_HEADROOM = 512
PROBE_TIMEOUT = 15.0
PROBE_STEP = -1  # the step id of the one end-to-end notification before measuring
STEP_PAUSE = 1.0
DRAIN_POLL = 0.1
BUSY_PERCENT = 20.0  # CPU use by others above which a run is flagged as noisy


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Fan-out benchmark: notification-hub vs the ceiling (hand-rolled Starlette + "
        "Redis), python-socketio and Django Channels.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--systems", default="hub,ceiling,socketio,django", help="comma-separated, in order"
    )
    parser.add_argument("--users", type=int, default=5000, help="connections, one user each")
    parser.add_argument(
        "--publish",
        default="bulk,single",
        help="publishing modes, in order: bulk (a batch every --batch-interval) and/or single "
        "(one request per notification)",
    )
    parser.add_argument("--rates", default=DEFAULT_RATES, help="bulk: notifications/s, rising")
    parser.add_argument(
        "--single-rates",
        default=DEFAULT_SINGLE_RATES,
        help="single: notifications/s (= requests/s), rising",
    )
    parser.add_argument(
        "--publish-connections",
        type=int,
        default=64,
        help="single: concurrent requests, each on its own keep-alive connection",
    )
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
    parser.add_argument(
        "--max-in-flight", type=int, default=16, help="bulk: concurrent publish requests"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unjudged publishing at the first rate"
    )
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for stragglers")
    parser.add_argument("--settle", type=float, default=5.0, help="idle seconds before RSS")
    parser.add_argument(
        "--client-procs",
        type=int,
        default=0,
        help=f"load-client worker processes (0: one per {USERS_PER_CLIENT_PROC} users, at least 2)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=200, help="handshakes at once")
    parser.add_argument(
        "--connect-rate", type=float, default=0, help="handshakes started per second (0: unpaced)"
    )
    parser.add_argument(
        "--selfcheck-seconds",
        type=float,
        default=SELFCHECK_SECONDS,
        help="seconds of the publisher's self-check before the run (0: skip)",
    )
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
    args.single_rates = sorted(int(r) for r in args.single_rates.split(",") if r.strip())
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems {unknown}; choose from {', '.join(SYSTEMS)}")
    args.publish = [m.strip() for m in args.publish.split(",") if m.strip()]
    if not args.publish or any(m not in PUBLISH_MODES for m in args.publish):
        parser.error(f"--publish takes {' and/or '.join(PUBLISH_MODES)}, comma-separated")
    if args.users < 1 or any(not r or min(r) < 1 for r in (args.rates, args.single_rates)):
        parser.error("--users and every rate must be positive")
    if args.client_procs < 1:
        args.client_procs = max(2, -(-args.users // USERS_PER_CLIENT_PROC))
    return args


def _mode_settings(mode: str, args: argparse.Namespace) -> tuple[list[int], int]:
    """(rates, concurrent requests) of a publishing mode."""
    if mode == "single":
        return args.single_rates, args.publish_connections
    return args.rates, args.max_in_flight


def _batch_size(mode: str, rate: int, args: argparse.Namespace) -> int:
    if mode == "single":
        return 1
    return batch_size_for(rate, args.batch_interval, args.batch_size)


async def _provision(system: System, users: int) -> list[Credential]:
    size = system.options.provision_concurrency
    async with HttpPool(system.http_base, size=size, timeout=60) as http:
        return await system.provision(http, users)


async def _probe(system: System, user_id: int, token: str) -> None:
    """One user, one notification, end to end: proves the path works before measuring."""
    async with connect(
        system.ws_url(token), subprotocols=system.protocol.subprotocols, compression=None
    ) as ws:
        await asyncio.wait_for(system.protocol.subscribe(ws, token), PROBE_TIMEOUT)
        async with HttpPool(system.http_base, size=1, timeout=PROBE_TIMEOUT) as http:
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
    http: HttpPool,
    recipients: Recipients,
    args: argparse.Namespace,
    *,
    mode: str,
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
        batch_size=_batch_size(mode, rate, args),
        max_in_flight=http.size,
    )  # fmt: skip
    for _ in range(max(1, round(args.drain / DRAIN_POLL))):
        if pool.stats(step_id).count >= sent.accepted:
            break
        await asyncio.sleep(DRAIN_POLL)
    elapsed = time.time() - sent.started_at
    got = pool.stats(step_id, take=True)
    ordered = sorted(got.latencies)
    step = StepResult(
        mode=mode,
        rate=rate,
        sent=sent.accepted,
        delivered=got.count,
        p50_ms=percentile(ordered, 0.50) * 1000,
        p99_ms=percentile(ordered, 0.99) * 1000,
        max_ms=(ordered[-1] * 1000) if ordered else 0.0,
        send_rate=sent.accepted / max(sent.send_seconds, 1e-9),
        request_rate=sent.requests / max(sent.send_seconds, 1e-9),
        asked_request_rate=sent.asked_request_rate,
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


async def _run_mode(
    system: System,
    pool: ClientPool,
    recipients: Recipients,
    args: argparse.Namespace,
    mode: str,
    step_ids: Iterator[int],
) -> list[StepResult]:
    """One publishing mode: an unjudged warm-up at its first rate, then its rising rates until
    one fails (twice)."""
    rates, connections = _mode_settings(mode, args)
    steps: list[StepResult] = []
    async with HttpPool(system.http_base, size=connections, timeout=30) as http:
        if args.warmup > 0:
            step = await _measure_step(
                system, pool, http, recipients, args,
                mode=mode, step_id=next(step_ids), rate=rates[0], duration=args.warmup,
            )  # fmt: skip
            print(f"   {system.name:8} warm-up {_step_progress(step)}", flush=True)
            await asyncio.sleep(STEP_PAUSE)
        for rate in rates:
            for attempt in range(1 + args.retries):
                step = await _measure_step(
                    system, pool, http, recipients, args,
                    mode=mode, step_id=next(step_ids), rate=rate, duration=args.duration,
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


async def _run_steps(
    system: System,
    pool: ClientPool,
    user_ids: list[int],
    args: argparse.Namespace,
    result: SystemResult,
) -> None:
    """Every publishing mode in turn, then the server's collector pauses (if it shows them)."""
    recipients = Recipients(user_ids)
    step_ids = itertools.count(1)  # unique across modes: the client counts per step id
    for mode in args.publish:
        result.steps.extend(await _run_mode(system, pool, recipients, args, mode, step_ids))
    async with HttpPool(system.http_base, size=1, timeout=10) as http:
        result.gc_pauses = await system.collector_pauses(http)
    if result.gc_pauses:
        longest = ", ".join(f"gen {g} {s * 1000:.1f} ms" for g, s in result.gc_pauses.items())
        print(f"   longest collector pause since start: {longest}", flush=True)


def _step_progress(step: StepResult) -> str:
    requests = (
        f", {step.request_rate:.0f}/{step.asked_request_rate:.0f} req/s"
        if step.mode == "single"
        else ""
    )
    return (
        f"{step.mode:6} {step.rate:>6}/s: {step.delivered}/{step.sent} delivered{requests}, "
        f"p50 {step.p50_ms:.1f} ms, p99 {step.p99_ms:.1f} ms, "
        f"server {step.server_cpu:.2f} cores → {step.why}"
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
    credentials = loop.run(_provision(system, users))
    print(f"   users and tokens ready in {time.perf_counter() - started:.1f} s", flush=True)
    loop.run(_probe(system, credentials[0].user_id, credentials[0].token))
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
    connected = pool.connect(
        [c.token for c in credentials], args.connect_concurrency, args.connect_rate
    )
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
    result = SystemResult(
        name=name, title=system.describe(), users=args.users, users_asked=args.users_asked
    )
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
        loop.run(_run_steps(system, pool, user_ids, args, result))
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
    args.users_asked = args.users
    limit = raise_nofile(args.users + FD_HEADROOM, strict=False)
    if limit < args.users + FD_HEADROOM:
        # A server at its limit cannot even accept the publisher's connections: measure fewer.
        args.users = limit - FD_HEADROOM
        print(
            f"warning: the open-file hard limit is {limit} and cannot be raised here: "
            f"measuring {args.users} users instead of {args.users_asked} (a server needs "
            f"{FD_HEADROOM} descriptors besides its sockets; raise the limit as root)",
            flush=True,
        )
    run_id = uuid.uuid4().hex[:8]
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results_path = args.results or BENCH_DIR / "results" / f"fanout-{stamp}.json"
    batching = (
        f"batches of {args.batch_size}"
        if args.batch_size
        else f"a batch every {args.batch_interval * 1000:g} ms"
    )
    modes = []
    if "bulk" in args.publish:
        modes.append(f"bulk at {args.rates}/s ({batching}, {args.max_in_flight} in flight)")
    if "single" in args.publish:
        modes.append(
            f"single (one request per notification) at {args.single_rates}/s "
            f"({args.publish_connections} connections)"
        )
    print(
        f"fan-out bench {run_id}: {', '.join(args.systems)}; {args.users} users; "
        f"{'; '.join(modes)}; {args.duration:g} s a step; "
        f"p99 limit {args.p99_ms:g} ms; {args.client_procs} client processes",
        flush=True,
    )
    results: list[SystemResult] = []
    ceiling = 0.0
    with _work_directory(run_id, args.keep_work) as workdir:
        options = RunOptions.from_args(args, workdir, run_id)
        try:
            if args.selfcheck_seconds > 0:
                connections = max(args.publish_connections, args.max_in_flight)
                ceiling = publisher_ceiling(workdir, connections, args.selfcheck_seconds)
                print(
                    f"publisher self-check: {ceiling:.0f} requests/s against a trivial "
                    f"Starlette/uvicorn endpoint ({connections} connections); a publishing "
                    "figure is the server's only well below that",
                    flush=True,
                )
            for name in args.systems:
                results.append(run_system(name, options, args))
        except KeyboardInterrupt:
            print("\ninterrupted: servers and clients stopped", file=sys.stderr)
            raise SystemExit(130) from None

    print()
    for result in results:
        print(system_block(result, args.p99_ms) + "\n")
    print("== summary\n" + summary_table(results, args.publish) + "\n")
    if ceiling:
        print(f"publisher self-check: {ceiling:.0f} requests/s (trivial endpoint)\n")
    print("== ratios (hub / peer)")
    for line in ratios(results, args.publish):
        print("   " + line)
    print("\n== targets (one hub process publishing through its own HTTP API)")
    for line in targets(results, ceiling):
        print("   " + line)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    with contextlib.suppress(OSError):
        save(results, {"run_id": run_id, "publisher_ceiling": ceiling, **settings}, results_path)
        chart_path = results_path.with_suffix(".svg")
        save_chart(results, args.p99_ms, chart_path)
        print(f"\nresults saved to {results_path}, chart to {chart_path}")
