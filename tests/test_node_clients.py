"""Real JavaScript clients against a real hub, under Node.

- the `@rails/actioncable` npm client (on the `ws` package's WebSocket) subscribes, receives,
  performs `mark_read` and reconnects by itself after the hub restarts;
- the Kiket seed's browser snippet works as written (one adaptation: it subscribes on open).

The clients' versions are pinned in tests/package.json + package-lock.json; the `node`
fixture installs them (`npm ci`) when tests/node_modules is missing or out of date. Without
`node`/`npm` on PATH these tests skip, or fail with `HUB_REQUIRE_SERVICES=1`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support import HubServer, api_user, bearer, create_product, publish

TESTS = Path(__file__).resolve().parent
SCRIPTS = TESTS / "node"
PACKAGE_JSON = TESTS / "package.json"
PACKAGE_LOCK = TESTS / "package-lock.json"
NODE_MODULES = TESTS / "node_modules"
PINNED = ("@rails/actioncable", "ws")
REQUIRE_SERVICES = os.environ.get("HUB_REQUIRE_SERVICES") == "1"
EXACT_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


# -- installing the pinned clients -----------------------------------------------------------


def _unavailable(message: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{message} (HUB_REQUIRE_SERVICES=1 makes this a failure)")
    pytest.skip(message)


def _locked_versions() -> dict[str, str]:
    lock = json.loads(PACKAGE_LOCK.read_text())
    return {name: lock["packages"][f"node_modules/{name}"]["version"] for name in PINNED}


def _node_modules_outdated() -> str | None:
    """Why tests/node_modules does not match package-lock.json, or None if it does."""
    marker = NODE_MODULES / ".package-lock.json"  # written by npm ci / npm install
    if not marker.exists():
        return "tests/node_modules is missing"
    if marker.stat().st_mtime < max(PACKAGE_LOCK.stat().st_mtime, PACKAGE_JSON.stat().st_mtime):
        return "tests/node_modules is older than package-lock.json"
    for name, version in _locked_versions().items():
        installed = NODE_MODULES / name / "package.json"
        if not installed.exists() or json.loads(installed.read_text())["version"] != version:
            return f"tests/node_modules does not hold {name}@{version}"
    return None


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` executable, with the pinned clients installed in tests/node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = " and ".join(name for name, path in (("node", node), ("npm", npm)) if not path)
        _unavailable(f"{missing} not on PATH: the Node client tests need Node.js and npm")
    if _node_modules_outdated() is not None:
        try:
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=TESTS,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except subprocess.TimeoutExpired:
            _unavailable("npm ci in tests/ did not finish in 600 s")
        if result.returncode != 0:
            _unavailable(f"npm ci in tests/ failed:\n{result.stdout}\n{result.stderr}")
        if (why := _node_modules_outdated()) is not None:
            pytest.fail(f"npm ci ran, yet {why}")
    return node


# -- a Node script as a subprocess that prints one JSON object per line -----------------------


class NodeScript:
    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[dict] = []  # every stdout line so far, parsed
        self.stderr_lines: list[str] = []
        self.exited_on_its_own: int | None = None
        self._stderr_task = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(cls, node: str, script: str, *args: str) -> NodeScript:
        process = await asyncio.create_subprocess_exec(
            node,
            str(SCRIPTS / script),
            *args,
            cwd=TESTS,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(script, process)

    async def _drain_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.stderr_lines.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def _report(self, what: str) -> str:
        seen = "\n".join(json.dumps(line) for line in self.lines[-30:])
        return f"{self.name}: {what}\nstdout (last lines):\n{seen}\nstderr:\n{self.stderr[-6000:]}"

    async def next(self, predicate: Callable[[dict], bool], within: float = 10) -> dict:
        """The next stdout line for which predicate(line) holds; fails after `within` s."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(self._report(f"no matching line within {within} s"))
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), left)
            except TimeoutError:
                continue
            if not raw:
                self.exited_on_its_own = await self.process.wait()
                await self._stderr_task
                raise AssertionError(self._report(f"exited with {self.exited_on_its_own}"))
            line = json.loads(raw)
            self.lines.append(line)
            if predicate(line):
                return line

    async def send(self, command: dict) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._stderr_task, 5)


def event(name: str) -> Callable[[dict], bool]:
    return lambda line: line.get("event") == name


def cable_url(hub_url: str) -> str:
    return hub_url.replace("http://", "ws://") + "/cable"


# -- the @rails/actioncable npm client --------------------------------------------------------


async def test_actioncable_client_subscribes_receives_and_marks_read(hub, client, node):
    keys = create_product(hub)
    user_id, token = await api_user(client, keys["sk_live"], name="Jan", locale="en")
    cable = await NodeScript.start(
        node, "actioncable_client.mjs", f"{cable_url(hub.url)}?token={token}"
    )
    try:
        assert await cable.next(lambda line: True) == {"event": "initialized"}
        # `connected` fires on confirm_subscription, and only on a supported subprotocol.
        connected = await cable.next(event("connected"))
        assert connected == {
            "event": "connected",
            "reconnected": False,
            "protocol": "actioncable-v1-json",
        }

        [notification_id] = await publish(
            client,
            keys["sk_live"],
            user_id,
            title="SLA Warning",
            message="DSAR for Jan Novak approaching 30-day deadline",
            url="/issues/456",
            type="sla_warning",
        )
        received = await cable.next(event("received"))
        assert isinstance(received["message"], str)  # the channel's message is a JSON string
        message = json.loads(received["message"])
        assert message["action"] == "new_notification"
        assert message["unread_count"] == 1
        notification = message["notification"]
        assert notification["id"] == notification_id
        assert (notification["title"], notification["message"], notification["url"]) == (
            "SLA Warning",
            "DSAR for Jan Novak approaching 30-day deadline",
            "/issues/456",
        )
        assert notification["type"] == "sla_warning"
        assert notification["read"] is False

        await cable.send({"perform": "mark_read", "data": {"id": notification_id}})
        performed = await cable.next(event("performed"))
        assert performed == {"event": "performed", "action": "mark_read", "sent": True}
        read = await cable.next(event("received"))
        assert json.loads(read["message"]) == {
            "action": "notification_read",
            "id": notification_id,
            "unread_count": 0,
        }
        count = await client.get("/api/v1/notifications/unread_count", headers=bearer(token))
        assert count.status_code == 200, count.text
        assert count.json() == {"unread_count": 0}
        listed = await client.get("/api/v1/notifications", headers=bearer(token))
        assert [n["read"] for n in listed.json()["notifications"]] == [True]

        assert not [line for line in cable.lines if line["event"] in ("disconnected", "rejected")]
        assert cable.process.returncode is None, cable.stderr
    finally:
        await cable.stop()


async def test_actioncable_client_gives_up_on_a_refused_token(hub, node):
    cable = await NodeScript.start(
        node, "actioncable_client.mjs", f"{cable_url(hub.url)}?token=not-a-token"
    )
    try:
        # The hub accepts the upgrade (with the client's subprotocol, or the client would
        # treat the socket as unsupported) and says unauthorized, reconnect false.
        gone = await cable.next(event("disconnected"))
        assert gone == {"event": "disconnected", "willAttemptReconnect": False}
        assert "using 'actioncable-v1-json' subprotocol" in cable.stderr
        assert "Disconnecting. Reason: unauthorized" in cable.stderr
        assert "ConnectionMonitor stopped" in cable.stderr  # it will not try again
        assert not [line for line in cable.lines if line["event"] == "connected"]
    finally:
        await cable.stop()


async def test_actioncable_client_reconnects_after_server_restart(tmp_path, node, redis_url):
    server = HubServer(workdir=tmp_path, redis_url=redis_url)
    await asyncio.to_thread(server.start)
    cable: NodeScript | None = None
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            keys = await asyncio.to_thread(create_product, server)
            user_id, token = await api_user(http, keys["sk_live"])
        cable = await NodeScript.start(
            node, "actioncable_client.mjs", f"{cable_url(server.url)}?token={token}"
        )
        first = await cable.next(event("connected"))
        assert first["reconnected"] is False

        # SIGTERM: the hub says {"type":"disconnect","reason":"server_restart","reconnect":true}.
        port = server.port
        await asyncio.to_thread(server.stop)
        gone = await cable.next(event("disconnected"))
        assert gone == {"event": "disconnected", "willAttemptReconnect": True}
        assert "Disconnecting. Reason: server_restart" in cable.stderr  # the client's own log

        # Same port, database and signing key: the token the client holds is still good.
        await asyncio.to_thread(server.start)
        assert server.port == port
        # The client's ConnectionMonitor notices the stale connection (6 s threshold, backoff
        # with jitter) and reopens by itself; the subscription is confirmed again.
        again = await cable.next(event("connected"), within=45)
        assert again == {
            "event": "connected",
            "reconnected": True,
            "protocol": "actioncable-v1-json",
        }

        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            [notification_id] = await publish(
                http, keys["sk_live"], user_id, title="After the restart"
            )
        received = await cable.next(event("received"))
        message = json.loads(received["message"])
        assert message["action"] == "new_notification"
        assert message["notification"]["id"] == notification_id
        assert message["notification"]["title"] == "After the restart"
        assert message["unread_count"] == 1
        assert cable.process.returncode is None, cable.stderr
    finally:
        if cable is not None:
            await cable.stop()
        await asyncio.to_thread(server.stop)


# -- the Kiket seed's browser snippet ---------------------------------------------------------


async def test_kiket_seed_snippet_receives_notifications(hub, client, node):
    keys = create_product(hub)
    user_id, token = await api_user(client, keys["sk_live"], locale="cs")
    snippet = await NodeScript.start(node, "kiket_snippet.mjs", cable_url(hub.url), token)
    try:
        # The seed's handler JSON.parses `data.message || "{}"` for every non-ping frame:
        # welcome and confirm_subscription (no `message`) must pass through it unharmed.
        assert await snippet.next(lambda line: "frame" in line) == {"frame": "welcome"}
        confirmed = await snippet.next(lambda line: "frame" in line)
        assert confirmed == {"frame": "confirm_subscription"}

        sent = [
            {
                "title": "SLA Warning",
                "message": "DSAR for Jan Novak approaching 30-day deadline",
                "url": "/issues/456",
            },
            {
                "title": "Nový komentář",
                "message": "Žádost č. 7 — odpověď",
                "url": "/issues/7#comment-3",
            },
        ]
        for unread_count, content in enumerate(sent, start=1):
            await publish(client, keys["sk_live"], user_id, type="sla_warning", **content)
            printed = await snippet.next(lambda line: "title" in line)
            assert printed == {**content, "unread_count": unread_count}
        assert snippet.process.returncode is None, snippet.stderr
        assert not [line for line in snippet.lines if "closed" in line]
    finally:
        await snippet.stop()
    assert snippet.stderr == ""  # no exception from the seed's handler, on any frame


# -- the pins -----------------------------------------------------------------------------------


def test_node_client_versions_are_pinned():
    package = json.loads(PACKAGE_JSON.read_text())
    assert package["private"] is True
    dependencies = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    for name in PINNED:
        assert EXACT_VERSION.match(dependencies.get(name, "")), (name, dependencies.get(name))
    lock = json.loads(PACKAGE_LOCK.read_text())
    assert lock["lockfileVersion"] >= 2
    root = lock["packages"][""]
    assert {**root.get("dependencies", {}), **root.get("devDependencies", {})} == dependencies
    assert _locked_versions() == {name: dependencies[name] for name in PINNED}
    for name in PINNED:
        assert lock["packages"][f"node_modules/{name}"]["integrity"].startswith("sha512-")
