"""The peers (the ceiling, python-socketio, Django Channels) as bench systems.

Every peer is one uvicorn process, started from the bench's own venv, with tokens the
bench mints (HMAC, bench.peers.peerkit) and the same publish endpoint
`POST /publish {"items": [{"user_id": …, "payload": …}]}` (one item when publishing one
request per notification); they differ in their server file,
their Redis prefix and their WebSocket dialect, which is all `PeerSystem` is told.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from bench.adapter import BENCH_DIR, HOST, Credential, PublishError, ServerProcess, System
from bench.http_client import HttpPool
from bench.peers import peerkit
from bench.protocols import PlainJSON, Protocol, SocketIO

PEERS_DIR = BENCH_DIR / "peers"


class PeerSystem(System):
    """A peer server from bench/peers/<directory>/server.py."""

    directory: ClassVar[str]

    def start(self) -> None:
        self.secret = secrets.token_urlsafe(32).encode()
        app_dir = PEERS_DIR / self.directory
        env = {
            **os.environ,
            "PYTHONPATH": str(PEERS_DIR),  # for `peerkit`; and NOT the repo (see peers/__init__)
            peerkit.SECRET_ENV: self.secret.decode(),
            peerkit.REDIS_URL_ENV: self.options.redis_url,
            peerkit.REDIS_PREFIX_ENV: f"bench-{self.name}-{self.options.run_id}",
        }
        argv = [
            sys.executable, "-m", "uvicorn", "server:app",
            "--app-dir", str(app_dir),
            "--host", HOST, "--port", str(self.port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.server = ServerProcess(argv, env, cwd=app_dir, log_path=self.workdir / "server.log")
        self.server.start()
        self.server.wait_ready(f"{self.http_base}/healthz")

    async def provision(self, http: HttpPool, count: int) -> list[Credential]:
        return [Credential(uid, peerkit.mint(self.secret, uid)) for uid in range(1, count + 1)]

    async def publish(
        self, http: HttpPool, user_ids: Sequence[int], content: dict[str, Any]
    ) -> int:
        items = [{"user_id": uid, "payload": content} for uid in user_ids]
        response = await http.post(f"{self.http_base}/publish", json={"items": items})
        if response.status_code != 200:
            raise PublishError(
                f"{self.name} /publish: {response.status_code} {response.text[:200]}"
            )
        return int(response.json()["count"])


class Ceiling(PeerSystem):
    name = "ceiling"
    title = "hand-rolled Starlette + Redis pub/sub (no persistence, channel per user)"
    directory = "ceiling"
    protocol: ClassVar[Protocol] = PlainJSON()


class DjangoChannels(PeerSystem):
    name = "django"
    title = "Django Channels 4.3 (RedisPubSubChannelLayer, group per user)"
    directory = "django_channels"
    protocol: ClassVar[Protocol] = PlainJSON()


class PythonSocketIO(PeerSystem):
    name = "socketio"
    title = "python-socketio 5.18 (AsyncRedisManager, room per user)"
    directory = "socketio"
    protocol: ClassVar[Protocol] = SocketIO()
