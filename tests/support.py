"""Helpers for tests: a hub subprocess, an in-process SMTP server, PostgreSQL scratch databases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from aiosmtpd.controller import Controller

from auth.tokens import generate_private_key_pem
from tests.cli_runner import run_cli

ROOT = Path(__file__).resolve().parent.parent


# Ports handed to servers the tests start. The kernel's "any free port" (bind to 0) comes from
# the ephemeral range that every worker's outgoing connections also draw from, so two pytest-xdist
# workers could be given the same number and the second server's bind fail while the first one
# answers its health check. Each worker draws from its own block below that range instead.
_PORT_BLOCK = 1500
_PORT_BASE = 20_000
_port_offsets = itertools.count(random.randrange(_PORT_BLOCK))


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", … or unset
    return int(worker[2:]) + 1 if worker[2:].isdigit() else 0


def log_since(path: Path, start: int) -> bytes:
    """What a server wrote to its log file from byte `start` on (since this start of it)."""
    with path.open("rb") as log:
        log.seek(start)
        return log.read()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, from this worker's own block."""
    start = _PORT_BASE + _worker_index() * _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = start + next(_port_offsets) % _PORT_BLOCK
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + _PORT_BLOCK - 1}")


def revisions_after(base: str) -> str:
    """The names of the migrations after `base` up to the head, oldest first, as `migrate`
    lists what it applied ("0004_identity_pools, 0005_refresh_grace, …")."""
    from alembic.script import ScriptDirectory

    from hub.migrate import MIGRATIONS, revision_name

    scripts = ScriptDirectory(str(MIGRATIONS))
    newer = [s.revision for s in scripts.iterate_revisions("head", base) if s.revision != base]
    return ", ".join(revision_name(r) for r in reversed(newer))


def run_async(coro):
    """Run a coroutine to completion from sync code, even inside a running loop's thread."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result.get("value")


# -- PostgreSQL -----------------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def create_postgres_database(base_url: str) -> str:
    """A fresh, empty database next to `base_url`'s; its URL."""
    import asyncpg

    name = f"hub_test_{uuid.uuid4().hex[:10]}"

    async def create() -> None:
        try:
            conn = await asyncpg.connect(base_url.replace("postgres://", "postgresql://"))
        except (OSError, asyncpg.PostgresError) as exc:
            raise OSError(str(exc)) from exc
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    run_async(create())
    return _with_database(base_url, name)


def drop_postgres_database(base_url: str, url: str) -> None:
    import asyncpg

    name = urlsplit(url).path.lstrip("/")

    async def drop() -> None:
        conn = await asyncpg.connect(base_url.replace("postgres://", "postgresql://"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    run_async(drop())


# -- SMTP -----------------------------------------------------------------------------------


class Mailbox:
    """A real SMTP server (aiosmtpd) on a free port that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self._lock:
            self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def for_recipient(self, address: str, kind: str | None = None) -> list[Message]:
        """Messages to `address` (only those of `kind`, the X-Hub-Mail header, when given)."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m["To"] == address and (kind is None or m["X-Hub-Mail"] == kind)
            ]

    async def wait_for(
        self, address: str, count: int = 1, within: float = 10, kind: str | None = None
    ) -> list[Message]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            found = self.for_recipient(address, kind)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} email(s) to {address}, got {len(found)}")


def mail_body(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode(message.get_content_charset() or "utf-8")


# -- the hub --------------------------------------------------------------------------------

GENEROUS_LIMITS = {
    f"HUB_RATE_{name}": "100000/minute"
    for name in (
        "LOGIN_IP",
        "LOGIN_ACCOUNT",
        "REGISTER_IP",
        "FORGOT_IP",
        "FORGOT_ACCOUNT",
        "VERIFY_MAIL_ACCOUNT",
        "REFRESH_IP",
        "REFRESH_SESSION",
        "PUBLIC_PRODUCT",
        "SERVER_KEY",
    )
}


@dataclass
class HubServer:
    """`notification-hub serve` in a subprocess on a free port, logging to a file."""

    workdir: Path
    database_url: str | None = None
    smtp_port: int | None = None
    redis_url: str | None = None
    rate_limits: bool = True  # False keeps the production defaults
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    # One per hub (not per env() call), so that `cli()` talks on the running hub's channels.
    redis_prefix: str = field(default_factory=lambda: f"hubtest-{uuid.uuid4().hex[:8]}")
    private_key_pem: str = field(default_factory=generate_private_key_pem)
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("HUB_") and k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL")
        }
        env.update(
            {
                "HUB_ENV": "development",
                "DATABASE_URL": self.database_url or f"sqlite:///{self.workdir / 'hub.db'}",
                "HUB_PUBLIC_URL": self.url,
                "HUB_JWT_PRIVATE_KEYS": self.private_key_pem,
                "HUB_REDIS_PREFIX": self.redis_prefix,
                "HUB_LOG_LEVEL": "debug",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.smtp_port:
            env["SMTP_URL"] = f"smtp://127.0.0.1:{self.smtp_port}"
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        if self.rate_limits:
            env.update(GENEROUS_LIMITS)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30) -> None:
        log = self.log_path.open("ab")
        log_start = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "serve", "--port", str(self.port)],
            cwd=self.workdir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.logs()}")
            # A health answer alone could come from another server on the same port; this
            # process says it listens only once its bind succeeded.
            if f"Uvicorn running on {self.url}".encode() in log_since(self.log_path, log_start):
                try:
                    if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"hub did not start in {timeout}s:\n{self.logs()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def twin(self, workdir: Path) -> HubServer:
        """Another process of this hub's deployment, not started: the same database, Redis
        and prefix, signing key, mail server and settings, on its own port and workdir."""
        return replace(
            self,
            workdir=workdir,
            database_url=self.database_url or f"sqlite:///{self.workdir / 'hub.db'}",
            extra_env=dict(self.extra_env),
            port=free_port(),
            process=None,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `notification-hub ARGS` against this hub's database."""
        return run_cli(args, cwd=self.workdir, env=self.env())


@contextlib.contextmanager
def production_hub(
    workdir: Path, database_url: str | None = None, **extra_env: str
) -> Iterator[HubServer]:
    """A hub in production mode (migrated first: production never migrates by itself), on
    SQLite unless `database_url` names a database."""
    server = HubServer(
        workdir=workdir,
        database_url=database_url,
        extra_env={"HUB_ENV": "production", **extra_env},
    )
    assert server.cli("migrate").returncode == 0
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- API shortcuts --------------------------------------------------------------------------

PASSWORD = "SecurePass123!"


def product_headers(slug: str = "demo", **extra: str) -> dict[str, str]:
    return {"X-Product-Slug": slug, **extra}


async def register(
    client: httpx.AsyncClient,
    email: str,
    *,
    password: str = PASSWORD,
    organization: str = "Acme s.r.o.",
    product: str = "demo",
    name: str = "Jan Novak",
    expect: int = 201,
) -> dict:
    response = await client.post(
        "/api/v1/auth/register",
        headers=product_headers(product),
        json={
            "email": email,
            "password": password,
            "password_confirmation": password,
            "name": name,
            "organization_name": organization,
        },
    )
    assert response.status_code == expect, response.text
    return response.json()


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, product: str = "demo"
) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        headers=product_headers(product),
        json={"email": email, "password": password},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def reset_through_mail(
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    email: str,
    password: str,
    headers: dict[str, str] | None = None,
) -> None:
    """The mailbox owner's way in: forgot password (on the product `headers` name, demo by
    default), then the mailed link."""
    before = len(mailbox.for_recipient(email, "password_reset"))
    forgot = await client.post(
        "/api/v1/auth/forgot_password",
        headers=headers or product_headers(),
        json={"email": email},
    )
    assert forgot.status_code == 202
    await reset_with_mailed_link(client, mailbox, email, password, before)


async def reset_with_mailed_link(
    client: httpx.AsyncClient, mailbox: Mailbox, email: str, password: str, before: int
) -> None:
    """Set `password` through the reset link mailed to `email` after the first `before`."""
    [*_, mail] = await mailbox.wait_for(email, before + 1, kind="password_reset")
    token = mail_body(mail).split("reset_token=")[1].split()[0]
    done = await client.put(
        "/api/v1/auth/reset_password",
        json={"token": token, "password": password, "password_confirmation": password},
    )
    assert done.status_code == 200, done.text


# -- server API and cable shortcuts ---------------------------------------------------------

NOTIFICATIONS_IDENTIFIER = json.dumps({"channel": "NotificationsChannel"})
KEY_LINE = re.compile(r"^\s+(pk_live|sk_live|pk_test|sk_test)\s+(\S+)$", re.MULTILINE)


def create_product(hub: HubServer, slug: str | None = None, *args: str) -> dict[str, str]:
    """Create a product through the CLI; its keys {"pk_live": …, "sk_live": …, …}."""
    slug = slug or f"p-{uuid.uuid4().hex[:10]}"
    result = hub.cli("products", "create", "--slug", slug, "--name", slug.title(), *args)
    assert result.returncode == 0, result.stderr
    return {"slug": slug, **dict(KEY_LINE.findall(result.stdout))}


async def api_user(
    client: httpx.AsyncClient, secret_key: str, external_id: str | None = None, **fields: str
) -> tuple[int, str]:
    """Upsert a user through the server API and mint an access token: (user id, token)."""
    external_id = external_id or f"ext-{uuid.uuid4().hex[:10]}"
    response = await client.post(
        "/api/v1/users", headers=bearer(secret_key), json={"external_id": external_id, **fields}
    )
    assert response.status_code in (200, 201), response.text
    user_id = response.json()["user"]["id"]
    minted = await client.post(f"/api/v1/users/{user_id}/tokens", headers=bearer(secret_key))
    assert minted.status_code == 201, minted.text
    return user_id, minted.json()["access_token"]


async def publish(
    client: httpx.AsyncClient, secret_key: str, user_ids: list[int] | int, **content: object
) -> list[int]:
    """Send a notification to each user through the server API; the new notification ids."""
    ids = [user_ids] if isinstance(user_ids, int) else user_ids
    body = {"title": "Hello", "recipients": [{"user_id": u} for u in ids], **content}
    response = await client.post("/api/v1/notifications", headers=bearer(secret_key), json=body)
    assert response.status_code == 201, response.text
    return [n["id"] for n in response.json()["notifications"]]


class CableClient:
    """A raw ActionCable client over `websockets`, for protocol-level tests."""

    def __init__(self, ws) -> None:
        self.ws = ws

    @classmethod
    async def connect(cls, hub_url: str, token: str, **kwargs: object) -> CableClient:
        import websockets

        url = hub_url.replace("http://", "ws://") + f"/cable?token={token}"
        ws = await websockets.connect(url, subprotocols=["actioncable-v1-json"], **kwargs)
        return cls(ws)

    async def recv(self, within: float = 5) -> dict:
        return json.loads(await asyncio.wait_for(self.ws.recv(), within))

    async def expect(self, predicate, within: float = 5) -> dict:
        """The next frame (pings skipped) for which predicate(frame) holds; fails after `within`."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("expected frame did not arrive")
            try:
                frame = await self.recv(left)
            except TimeoutError:
                raise AssertionError("expected frame did not arrive") from None
            if frame.get("type") != "ping" and predicate(frame):
                return frame

    async def send(self, command: dict | str) -> None:
        await self.ws.send(command if isinstance(command, str) else json.dumps(command))

    async def subscribe(self, identifier: str = NOTIFICATIONS_IDENTIFIER) -> dict:
        await self.send({"command": "subscribe", "identifier": identifier})
        return await self.expect(lambda f: f.get("identifier") == identifier and "type" in f)

    async def perform(
        self, action: str, identifier: str = NOTIFICATIONS_IDENTIFIER, **data
    ) -> None:
        payload = json.dumps({"action": action, **data})
        await self.send({"command": "message", "identifier": identifier, "data": payload})

    async def next_message(self, action: str | None = None, within: float = 5) -> dict:
        """The next channel message (decoded from its JSON string), optionally of `action`."""
        frame = await self.expect(
            lambda f: (
                "message" in f
                and (action is None or json.loads(f["message"]).get("action") == action)
            ),
            within,
        )
        return json.loads(frame["message"])

    async def close(self) -> None:
        await self.ws.close()


async def cable(hub_url: str, token: str) -> CableClient:
    """A connected client that has seen `welcome` and is subscribed to NotificationsChannel."""
    client = await CableClient.connect(hub_url, token)
    assert (await client.recv()) == {"type": "welcome"}
    confirmed = await client.subscribe()
    assert confirmed["type"] == "confirm_subscription", confirmed
    return client


class AlertSink:
    """A real local HTTP endpoint (in a thread) that records the JSON POSTed to it, and the
    Host header of each request. `host`, `port` and `tls` (a server SSL context) place it;
    with `redirect_to` it answers 307 to that URL instead of 204, with `status` that status;
    `delay` seconds pass between receiving a POST and answering it (a hanging receiver)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
        redirect_to: str | None = None,
        status: int = 204,
        delay: float = 0.0,
    ) -> None:
        import http.server
        import threading

        received: list[dict] = []
        hosts: list[str] = []
        self.received = received
        self.hosts = hosts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hosts.append(self.headers.get("Host", ""))
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                time.sleep(delay)
                self.send_response(307 if redirect_to else status)
                if redirect_to:
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait_for(self, event: str, within: float = 5) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for alert in self.received:
                if alert.get("event") == event:
                    return alert
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {event} alert arrived; got {self.received}")

    async def wait_for_count(self, count: int, within: float = 5) -> list[dict]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return list(self.received)
            await asyncio.sleep(0.05)
        raise AssertionError(f"expected {count} posts, got {self.received}")

    def close(self) -> None:
        self.server.shutdown()


async def vanish_mid_body(port: int, request: bytes, linger: float = 0.0) -> None:
    """Send `request` (a head whose Content-Length promises more than the body that follows)
    and close the connection `linger` seconds later: a client gone mid-body."""
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    await asyncio.sleep(linger)
    writer.close()
    await writer.wait_closed()


def error_code(response: httpx.Response) -> str:
    """The `code` of an answer in the hub's error shape."""
    return response.json()["error"]["code"]


async def register_owner(client: httpx.AsyncClient, product: dict, email: str, **headers) -> dict:
    """An org owner (registered through the headless auth API): its register answer."""
    response = await client.post(
        "/api/v1/auth/register",
        headers={"X-Publishable-Key": product["pk_live"], **headers},
        json={
            "email": email,
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "name": "Avery",
            "organization_name": "Acme",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()
