"""The load client: N WebSocket users spread over several worker processes.

One Python process cannot drive thousands of sockets at high message rates, so `ClientPool`
starts a few worker processes (spawned, each on its own asyncio loop, uvloop when installed),
gives each a slice of the users, and talks to them over pipes with small request/answer
messages. The same code drives every system; a `Protocol` adapter (bench.protocols) is the
only system-specific part.

A worker records, per publish step, how many notifications arrived and the latency of each
(receive time − the `sent_at` the publisher put in the notification's data, both
`time.time()` on this machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import resource
import signal
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from bench.loop import run
from bench.protocols import PROTOCOLS, HandshakeError, Protocol

CONNECT_ATTEMPTS = 3
HANDSHAKE_TIMEOUT = 30.0
REPLY_TIMEOUT = 600.0  # the longest a worker may take to answer one request (connecting all)


def raise_nofile(needed: int, strict: bool = True) -> int:
    """Raise this process's open-file limit to the hard limit (and the hard limit to `needed`
    where allowed); fail clearly if it stays too low, unless not `strict`. The new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        with contextlib.suppress(ValueError, OSError):  # needs CAP_SYS_RESOURCE
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            soft, hard = needed, needed
    target = max(soft, needed) if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed and strict:
        raise SystemExit(
            f"bench: the open-file limit is {target} (hard limit {hard}) but this run needs "
            f"about {needed}; raise it (e.g. `ulimit -n {needed}` as root, or "
            f"/etc/security/limits.conf) or run with fewer --users"
        )
    return target


# -- the worker process -----------------------------------------------------------------------


class Worker:
    """One worker process's users: connects them, reads every socket, keeps per-step stats."""

    def __init__(self, conn: Connection, protocol: Protocol, ws_base: str, deflate: bool) -> None:
        self.conn = conn
        self.protocol = protocol
        self.ws_base = ws_base
        self.compression = "deflate" if deflate else None
        self.sockets: list[ClientConnection] = []
        self.readers: set[asyncio.Task[None]] = set()
        self.counts: defaultdict[int, int] = defaultdict(int)
        self.latencies: defaultdict[int, array] = defaultdict(lambda: array("d"))
        self.last_seen: defaultdict[int, float] = defaultdict(float)
        self.dropped = 0
        self.bad_frames = 0
        self.closing = False
        self.connect_interval = 0.0  # seconds between handshakes (0: unpaced)
        self.next_connect = 0.0

    def record(self, data: dict[str, Any]) -> None:
        step = data.get("step")
        sent_at = data.get("sent_at")
        if not isinstance(step, int) or not isinstance(sent_at, float | int):
            return
        now = time.time()
        self.counts[step] += 1
        self.latencies[step].append(now - sent_at)
        self.last_seen[step] = now

    async def read(self, ws: ClientConnection) -> None:
        on_frame = self.protocol.on_frame
        try:
            async for frame in ws:
                try:
                    reply, data = on_frame(frame)
                except (ValueError, KeyError, TypeError, AttributeError):
                    self.bad_frames += 1
                    continue
                if data is not None:
                    self.record(data)
                if reply is not None:
                    await ws.send(reply)
        except ConnectionClosed:
            pass
        finally:
            if not self.closing:
                self.dropped += 1

    async def _pace(self) -> None:
        """Wait for this handshake's turn when connects are paced (`--connect-rate`)."""
        if not self.connect_interval:
            return
        now = time.monotonic()
        turn = max(now, self.next_connect)
        self.next_connect = turn + self.connect_interval
        if turn > now:
            await asyncio.sleep(turn - now)

    async def open_one(self, token: str, gate: asyncio.Semaphore) -> str | None:
        """Connect and subscribe one user (a few attempts); None, or why it failed."""
        error = "not attempted"
        for attempt in range(CONNECT_ATTEMPTS):
            async with gate:
                await self._pace()
                try:
                    ws = await connect(
                        self.protocol.url(self.ws_base, token),
                        subprotocols=self.protocol.subprotocols,  # type: ignore[arg-type]
                        compression=self.compression,
                        open_timeout=HANDSHAKE_TIMEOUT,
                        ping_interval=None,
                        close_timeout=2,
                        max_queue=64,
                    )
                    try:
                        await asyncio.wait_for(
                            self.protocol.subscribe(ws, token), HANDSHAKE_TIMEOUT
                        )
                    except BaseException:
                        await ws.close()
                        raise
                except (OSError, TimeoutError, WebSocketException, HandshakeError) as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                else:
                    self.sockets.append(ws)
                    task = asyncio.create_task(self.read(ws))
                    self.readers.add(task)
                    task.add_done_callback(self.readers.discard)
                    return None
            await asyncio.sleep(0.25 * (attempt + 1))
        return error

    async def connect_all(
        self, slots: Sequence[tuple[int, str]], concurrency: int, rate: float
    ) -> dict:
        gate = asyncio.Semaphore(concurrency)
        self.connect_interval = 1.0 / rate if rate > 0 else 0.0
        started = time.perf_counter()
        results = await asyncio.gather(*(self.open_one(token, gate) for _, token in slots))
        elapsed = time.perf_counter() - started
        # Thousands of long-lived connection objects make every full collection slow; a pause
        # here would be charged to the server as latency. Exempt them from the collector.
        gc.collect()
        gc.freeze()
        connected = [index for (index, _), error in zip(slots, results, strict=True) if not error]
        errors = [error for error in results if error]
        return {"elapsed": elapsed, "connected": connected, "errors": errors}

    async def close_all(self) -> None:
        self.closing = True
        closes = [ws.close() for ws in self.sockets]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*closes, return_exceptions=True), 20)
        for task in list(self.readers):
            task.cancel()

    def stats(self, step: int, take: bool) -> dict:
        """The step's count (and, with `take`, its latencies, which are then forgotten)."""
        answer = {
            "count": self.counts.get(step, 0),
            "last_seen": self.last_seen.get(step, 0.0),
            "dropped": self.dropped,
            "bad_frames": self.bad_frames,
        }
        if take:
            answer["latencies"] = self.latencies.pop(step, array("d")).tobytes()
            self.counts.pop(step, None)
            self.last_seen.pop(step, None)
        return answer

    def _pump(self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
        """Reader thread: blocking reads of the parent's requests, handed to the loop.

        (Not `loop.add_reader`: the loop makes the pipe non-blocking, and a request larger
        than the pipe's buffer, such as thousands of tokens, then fails half-read.)
        """
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                message = ("close",)
            loop.call_soon_threadsafe(inbox.put_nowait, message)
            if message[0] == "close":
                return

    async def serve(self) -> None:
        """Answer the parent's requests until it says close (or goes away)."""
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, args=(loop, inbox), daemon=True).start()
        while True:
            command, *args = await inbox.get()
            if command == "connect":
                answer: Any = await self.connect_all(*args)
            elif command == "stats":
                answer = self.stats(*args)
            elif command == "close":
                await self.close_all()
                with contextlib.suppress(OSError):
                    self.conn.send({"closed": True})
                return
            else:
                answer = {"error": f"unknown command {command!r}"}
            self.conn.send(answer)


def worker_main(
    conn: Connection, protocol: str, ws_base: str, needed_fds: int, deflate: bool
) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and closes us
    raise_nofile(needed_fds)
    worker = Worker(conn, PROTOCOLS[protocol], ws_base, deflate)
    run(worker.serve())


# -- the parent's side ------------------------------------------------------------------------


@dataclass
class ConnectResult:
    elapsed: float  # wall clock for every user to be connected and subscribed
    connected: list[int]  # indices (into the credentials) of the users that made it
    errors: list[str] = field(default_factory=list)


@dataclass
class StepStats:
    count: int
    last_seen: float
    dropped: int
    bad_frames: int
    latencies: array


class ClientPool:
    """The parent's handle on the worker processes."""

    def __init__(self, processes: int, protocol: Protocol, ws_base: str, deflate: bool = False):
        self.size = processes
        self.protocol = protocol
        self.ws_base = ws_base
        self.deflate = deflate
        self.workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    def start(self, users: int) -> None:
        context = multiprocessing.get_context("spawn")
        needed = users // self.size + 256
        for _ in range(self.size):
            parent, child = context.Pipe()
            process = context.Process(
                target=worker_main,
                args=(child, self.protocol.name, self.ws_base, needed, self.deflate),
                daemon=True,
            )
            process.start()
            child.close()
            self.workers.append((process, parent))

    def _ask(self, messages: Sequence[Any], timeout: float = 60) -> list[Any]:
        for (_, conn), message in zip(self.workers, messages, strict=True):
            conn.send(message)
        answers = []
        for process, conn in self.workers:
            if not conn.poll(timeout):
                raise RuntimeError(f"load-client worker {process.pid} did not answer")
            answers.append(conn.recv())
        return answers

    def connect(self, tokens: Sequence[str], concurrency: int, rate: float = 0.0) -> ConnectResult:
        """Connect and subscribe every user, each worker a round-robin slice, at most
        `concurrency` handshakes at once and (when `rate` > 0) `rate` started per second in
        all; wall clock."""
        slices: list[list[tuple[int, str]]] = [[] for _ in self.workers]
        for index, token in enumerate(tokens):
            slices[index % self.size].append((index, token))
        per_worker = max(1, concurrency // self.size)
        started = time.perf_counter()
        per_worker_rate = rate / self.size
        answers = self._ask(
            [("connect", s, per_worker, per_worker_rate) for s in slices], timeout=REPLY_TIMEOUT
        )
        elapsed = time.perf_counter() - started
        for answer in answers:
            if "connected" not in answer:
                raise RuntimeError(f"load-client worker answered {answer!r} to connect")
        connected = sorted(i for a in answers for i in a["connected"])
        return ConnectResult(elapsed, connected, [e for a in answers for e in a["errors"]])

    def stats(self, step: int, take: bool = False) -> StepStats:
        answers = self._ask([("stats", step, take)] * self.size)
        latencies = array("d")
        for answer in answers:
            if take:
                latencies.frombytes(answer["latencies"])
        return StepStats(
            count=sum(a["count"] for a in answers),
            last_seen=max(a["last_seen"] for a in answers),
            dropped=sum(a["dropped"] for a in answers),
            bad_frames=sum(a["bad_frames"] for a in answers),
            latencies=latencies,
        )

    def dropped(self) -> int:
        """Connections the servers closed (not the client) so far."""
        return sum(answer["dropped"] for answer in self._ask([("stats", -1, False)] * self.size))

    def cpu_seconds(self) -> float:
        total = 0.0
        for process, _ in self.workers:
            with contextlib.suppress(psutil.NoSuchProcess, TypeError):
                times = psutil.Process(process.pid).cpu_times()
                total += times.user + times.system
        return total

    def close(self) -> None:
        """Close every socket, then stop the workers (forcibly if they hang)."""
        for process, conn in self.workers:
            if process.is_alive():
                with contextlib.suppress(OSError, BrokenPipeError):
                    conn.send(("close",))
        for process, conn in self.workers:
            with contextlib.suppress(OSError, EOFError):
                if conn.poll(30):
                    conn.recv()
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
            conn.close()
        self.workers = []
