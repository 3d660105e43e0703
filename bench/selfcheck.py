"""The publisher's self-check: how many requests/s it can send on this machine at all.

A publishing figure is only a server's when it is well below what the publisher drives against
a server that does nothing. Every fan-out run measures that first (a few seconds against the
trivial Starlette/uvicorn endpoint in bench/peers/trivial/, closed loop, `connections`
keep-alive connections) and prints it; `python -m bench selfcheck --httpx` also measures httpx
the same way, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench.adapter import BENCH_DIR, HOST, ServerProcess, free_port
from bench.http_client import HttpPool
from bench.loop import run

TRIVIAL_DIR = BENCH_DIR / "peers" / "trivial"
BODY = {"items": [{"user_id": 1, "payload": {"title": "self-check"}}]}

Post = Callable[[], Awaitable[int]]


def start_trivial_server(workdir: Path) -> tuple[ServerProcess, str]:
    """The trivial endpoint in its own uvicorn process; (process, base URL)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "uvicorn", "server:app",
        "--app-dir", str(TRIVIAL_DIR),
        "--host", HOST, "--port", str(port),
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # as the peers run
    server = ServerProcess(argv, env, cwd=TRIVIAL_DIR, log_path=workdir / "trivial.log")
    server.start()
    base = f"http://{HOST}:{port}"
    server.wait_ready(f"{base}/healthz")
    return server, base


async def _closed_loop(post: Post, connections: int, seconds: float) -> float:
    """`connections` clients posting back to back for `seconds`; requests/s answered 200."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            if await post() == 200:
                done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.perf_counter() - started)


async def pool_rate(base: str, connections: int, seconds: float) -> float:
    """Requests/s `HttpPool` (the bench's publisher) drives against `base`."""
    async with HttpPool(base, size=connections) as http:

        async def post() -> int:
            return (await http.post(f"{base}/publish", json=BODY)).status_code

        return await _closed_loop(post, connections, seconds)


async def httpx_rate(base: str, connections: int, seconds: float) -> float:
    """Requests/s httpx drives against `base`, the same way (for comparison only)."""
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=30, limits=limits) as http:

        async def post() -> int:
            return (await http.post(f"{base}/publish", json=BODY)).status_code

        return await _closed_loop(post, connections, seconds)


def publisher_ceiling(workdir: Path, connections: int, seconds: float) -> float:
    """Start the trivial endpoint, measure the publisher against it, stop it; requests/s."""
    server, base = start_trivial_server(workdir)
    try:
        return run(pool_rate(base, connections, seconds))
    finally:
        server.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench selfcheck",
        description="Requests/s the bench's publisher (and optionally httpx) drives against a "
        "trivial Starlette/uvicorn endpoint on this machine.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--seconds", type=float, default=5.0, help="per client measured")
    parser.add_argument("--httpx", action="store_true", help="measure httpx the same way too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-selfcheck-") as workdir:
        server, base = start_trivial_server(Path(workdir))
        try:
            print(f"trivial endpoint {base}/publish, {args.connections} connections, closed loop")
            clients = [("bench publisher (asyncio HTTP/1.1 keep-alive)", pool_rate)]
            if args.httpx:
                clients.append(("httpx AsyncClient", httpx_rate))
            for name, measure in clients:
                own, served = time.process_time(), server.cpu_seconds()
                started = time.perf_counter()
                rate = run(measure(base, args.connections, args.seconds))
                elapsed = time.perf_counter() - started
                print(
                    f"   {name:46} {rate:8.0f} requests/s; CPU: client "
                    f"{(time.process_time() - own) / elapsed:.2f} cores, trivial server "
                    f"{(server.cpu_seconds() - served) / elapsed:.2f} cores"
                )
        finally:
            server.stop()
