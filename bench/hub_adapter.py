"""notification-hub as a bench system: one `notification-hub serve` process, its own HTTP API.

Set-up, all through the hub's command line and public API (nothing imported from the hub):

1. a fresh database: a SQLite file in the run's work directory, or (`--hub-db postgres`) a
   scratch database on the local PostgreSQL that is dropped at the end;
2. a signing key (`notification-hub keys generate-jwt`), `notification-hub migrate`, and a
   product (`notification-hub products create --slug bench`), whose `sk_live` key is the
   publisher's credential;
3. `notification-hub serve --port P` with Redis fan-out under a run-unique prefix (or the
   in-memory broker with `--hub-broker memory`), warnings-only logging and rate limits out of
   the way;
4. users through `POST /api/v1/users` and one access token each through
   `POST /api/v1/users/{id}/tokens`; notifications through `POST /api/v1/notifications`.

The hub runs from the bench venv (which installs it with `-e ..`) unless `--hub-bin` says
otherwise. Its top-level package `channels` has the same name as Django Channels', which the
bench venv also holds, so the hub is started with the repository first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from bench.adapter import (
    REPO_DIR,
    Credential,
    PublishError,
    RunOptions,
    ServerProcess,
    System,
    SystemUnavailable,
    run_command,
)
from bench.http_client import HttpPool
from bench.protocols import ActionCable, Protocol

API = "/api/v1"
GENEROUS = "1000000/minute"
RATE_LIMIT_SETTINGS = (
    "HUB_RATE_LOGIN_IP",
    "HUB_RATE_LOGIN_ACCOUNT",
    "HUB_RATE_REGISTER_IP",
    "HUB_RATE_FORGOT_IP",
    "HUB_RATE_FORGOT_ACCOUNT",
    "HUB_RATE_REFRESH_IP",
    "HUB_RATE_REFRESH_SESSION",
    "HUB_RATE_PUBLIC_PRODUCT",
    "HUB_RATE_SERVER_KEY",
)
SECRET_KEY_LINE = re.compile(r"^\s*sk_live\s+(sk_live_\S+)\s*$", re.MULTILINE)
# /metrics' longest collector pause since start (absent in older hubs)
GC_PAUSE_LINE = re.compile(
    r'^hub_gc_pause_seconds_max\{generation="(\w+)"\}\s+(\S+)\s*$', re.MULTILINE
)


def _database_named(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _postgres(url: str, statement: str) -> None:
    import asyncpg  # a dependency of the hub, so in the bench venv too

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Hub(System):
    name = "hub"
    title = "notification-hub (one process, its own HTTP API)"
    protocol: ClassVar[Protocol] = ActionCable()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scratch_database: str | None = None
        self.secret_key = ""
        self.env: dict[str, str] = {}

    @property
    def bin(self) -> str:
        return self.options.hub_bin or str(Path(sys.executable).with_name("notification-hub"))

    def describe(self) -> str:
        broker = "Redis" if self.options.hub_broker == "redis" else "in-memory broker"
        return f"notification-hub (one process, {self.options.hub_db}, {broker}, own HTTP API)"

    def _database_url(self) -> str:
        if self.options.hub_db == "sqlite":
            return f"sqlite:///{self.workdir / 'hub.db'}"
        name = f"bench_{uuid.uuid4().hex[:10]}"
        asyncio.run(_postgres(self.options.postgres_url, f'CREATE DATABASE "{name}"'))
        self.scratch_database = name
        return _database_named(self.options.postgres_url, name)

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(REPO_DIR), os.environ.get("PYTHONPATH", "")]),
            "HUB_ENV": "development",
            "DATABASE_URL": self._database_url(),
            "HUB_REDIS_PREFIX": f"bench-{self.options.run_id}",
            "HUB_LOG_LEVEL": "warning",
            "HUB_DEV_KEY_FILE": str(self.workdir / "dev-key.pem"),
            **dict.fromkeys(RATE_LIMIT_SETTINGS, GENEROUS),
        }
        env.pop("REDIS_URL", None)
        if self.options.hub_broker == "redis":
            env["REDIS_URL"] = self.options.redis_url
        env["HUB_JWT_PRIVATE_KEYS"] = run_command(
            [self.bin, "keys", "generate-jwt"], env, self.workdir
        )
        run_command([self.bin, "migrate"], env, self.workdir)
        created = run_command(
            [self.bin, "products", "create", "--slug", "bench", "--name", "Bench"],
            env,
            self.workdir,
        )
        found = SECRET_KEY_LINE.search(created)
        if not found:
            raise RuntimeError(f"no sk_live key in `products create`'s output:\n{created}")
        self.secret_key = found.group(1)
        self.env = env
        argv = [self.bin, "serve", "--port", str(self.port)]
        self.server = ServerProcess(
            argv, env, cwd=self.workdir, log_path=self.workdir / "server.log"
        )
        self.server.start()
        self.server.wait_ready(f"{self.http_base}/healthz")

    @property
    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret_key}"}

    async def _create_user(self, http: HttpPool, index: int) -> Credential:
        url = f"{self.http_base}{API}/users"
        body = {"external_id": f"bench-{index}", "name": f"Bench user {index}"}
        response = await http.post(url, json=body, headers=self._auth)
        if response.status_code in (404, 405):
            raise SystemUnavailable(
                f"the hub has no server API yet: POST {API}/users answered {response.status_code}"
            )
        if response.status_code not in (200, 201):
            raise RuntimeError(f"POST {API}/users: {response.status_code} {response.text[:300]}")
        user_id = int(response.json()["user"]["id"])
        response = await http.post(f"{url}/{user_id}/tokens", headers=self._auth)
        if response.status_code not in (200, 201):
            raise RuntimeError(
                f"POST {API}/users/{user_id}/tokens: {response.status_code} {response.text[:300]}"
            )
        return Credential(user_id, response.json()["access_token"])

    async def provision(self, http: HttpPool, count: int) -> list[Credential]:
        first = await self._create_user(http, 1)  # also tells whether the API exists
        gate = asyncio.Semaphore(self.options.provision_concurrency)

        async def one(index: int) -> Credential:
            async with gate:
                return await self._create_user(http, index)

        rest = await asyncio.gather(*(one(i) for i in range(2, count + 1)))
        return [first, *rest]

    async def publish(
        self, http: HttpPool, user_ids: Sequence[int], content: dict[str, Any]
    ) -> int:
        body = {"recipients": [{"user_id": uid} for uid in user_ids], **content}
        response = await http.post(
            f"{self.http_base}{API}/notifications", json=body, headers=self._auth
        )
        if response.status_code not in (200, 201):
            raise PublishError(f"hub notifications: {response.status_code} {response.text[:200]}")
        return int(response.json().get("count", len(user_ids)))

    async def collector_pauses(self, http: HttpPool) -> dict[str, float] | None:
        response = await http.get(f"{self.http_base}/metrics")
        if response.status_code != 200:
            return None
        pauses = {gen: float(value) for gen, value in GC_PAUSE_LINE.findall(response.text)}
        return pauses or None

    def stop(self) -> None:
        super().stop()
        if self.scratch_database:
            drop = f'DROP DATABASE IF EXISTS "{self.scratch_database}" WITH (FORCE)'
            asyncio.run(_postgres(self.options.postgres_url, drop))
            self.scratch_database = None


def run_with_hub(
    args: argparse.Namespace, prefix: str, run: Callable[[argparse.Namespace, Hub], Awaitable]
) -> None:
    """Start a hub in a scratch directory, `run(args, hub)`, and always stop it (its log's
    last lines printed if the run failed)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        hub = Hub(RunOptions.from_args(args, Path(workdir), uuid.uuid4().hex[:8]))
        hub.start()
        try:
            asyncio.run(run(args, hub))  # type: ignore[arg-type]
        except Exception:
            if hub.server is not None:
                print(f"server log, last lines:\n{hub.server.log_tail()}", flush=True)
            raise
        finally:
            hub.stop()
