"""The one interface every measured system implements, and the server process behind it.

A `System` starts its server (`start`), creates users and their tokens (`provision`), publishes
one batch of per-user notifications through its own server-side HTTP path (`publish`), and
stops everything it started (`stop`). Its `protocol` is the load client's adapter for the
system's WebSocket dialect. The bench drives every system through this interface only.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psutil

from bench.http_client import HttpPool
from bench.protocols import Protocol

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
HOST = "127.0.0.1"  # every load stays on the loopback interface


class SystemUnavailable(RuntimeError):
    """The system cannot be measured (e.g. an API it needs does not exist yet)."""


class ServerFailed(RuntimeError):
    """A server did not come up; its log says why."""


class PublishError(RuntimeError):
    """The server refused a publish request."""


@dataclass(frozen=True)
class Credential:
    """One user: the id the system's publish path addresses, and the token the client uses."""

    user_id: int
    token: str


@dataclass(frozen=True)
class RunOptions:
    """What the command line decides for every system."""

    workdir: Path
    redis_url: str
    run_id: str
    hub_db: str = "sqlite"
    hub_broker: str = "redis"
    hub_bin: str | None = None
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/test"
    provision_concurrency: int = 32

    @classmethod
    def from_args(cls, args: argparse.Namespace, workdir: Path, run_id: str) -> RunOptions:
        """The options `add_server_options` put on the command line."""
        return cls(
            workdir=workdir,
            redis_url=args.redis_url,
            run_id=run_id,
            hub_db=args.hub_db,
            hub_broker=args.hub_broker,
            hub_bin=args.hub_bin,
            postgres_url=args.postgres_url,
        )


def add_server_options(parser: argparse.ArgumentParser) -> None:
    """Where the servers' Redis and PostgreSQL are, and how the hub runs (every bench)."""
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--hub-db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--hub-broker", choices=("redis", "memory"), default="redis")
    parser.add_argument("--hub-bin", help="notification-hub executable (default: the bench venv's)")
    parser.add_argument(
        "--postgres-url",
        default=RunOptions.postgres_url,
        help="where --hub-db postgres creates (and drops) its scratch database",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def run_command(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float = 120
) -> str:
    """Run a short helper command to completion; its stdout, or a readable error."""
    done = subprocess.run(
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:3])} … failed ({done.returncode}):\n{done.stderr[-2000:]}"
        )
    return done.stdout


class ServerProcess:
    """A server in its own session (so Ctrl-C reaches only the bench), logging to a file."""

    def __init__(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, url: str, timeout: float = 60) -> None:
        """Poll `url` until it answers 200; fail early, with the log, if the server died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is None or self.popen.poll() is not None:
                code = self.popen.returncode if self.popen else None
                raise ServerFailed(f"the server exited during start-up (exit code {code})")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise ServerFailed(f"the server was not ready after {timeout:.0f} s")

    def _processes(self) -> list[psutil.Process]:
        if self.popen is None:
            return []
        try:
            root = psutil.Process(self.popen.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss(self) -> int:
        """Resident memory of the server and its children, in bytes."""
        total = 0
        for proc in self._processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time the server and its children have used so far."""
        total = 0.0
        for proc in self._processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the server's whole process group, SIGKILL it after `grace` seconds."""
        if self.popen is None or self.popen.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.popen.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue


class System(ABC):
    """A notification server under test, seen only through its public surface."""

    name: ClassVar[str]
    title: ClassVar[str]
    protocol: ClassVar[Protocol]

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.port = free_port()
        self.workdir = options.workdir / self.name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.server: ServerProcess | None = None

    @property
    def http_base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{HOST}:{self.port}"

    @property
    def process(self) -> ServerProcess:
        """The running server (after `start`)."""
        if self.server is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self.server

    def ws_url(self, token: str) -> str:
        return self.protocol.url(self.ws_base, token)

    @abstractmethod
    def start(self) -> None:
        """Prepare and start the server; return once it answers."""

    @abstractmethod
    async def provision(self, http: HttpPool, count: int) -> list[Credential]:
        """Create `count` users, each with its own token."""

    @abstractmethod
    async def publish(
        self, http: HttpPool, user_ids: Sequence[int], content: dict[str, Any]
    ) -> int:
        """Publish `content` to each user through the server-side path; how many it took."""

    async def collector_pauses(self, http: HttpPool) -> dict[str, float] | None:
        """The server's longest garbage-collector pause per generation, in seconds, when it
        exposes them (None when it does not)."""
        return None

    def stop(self) -> None:
        """Stop the server and remove whatever `start` created outside the work directory."""
        if self.server is not None:
            self.server.stop()

    def describe(self) -> str:
        """One line on how this system runs, for the report."""
        return self.title
