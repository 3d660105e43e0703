"""The operator's command line and start-up rules: products, keys, production safety."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from auth.credential_secrets import hash_secret
from hub.cli import build_parser
from hub.migrate import head_revision, migrate, revision_name
from tests.support import (
    KEY_LINE,
    ROOT,
    HubServer,
    api_user,
    cable,
    create_product,
    free_port,
    production_hub,
)


def test_products_create_prints_keys_once_and_stores_only_hashes(tmp_path):
    server = HubServer(workdir=tmp_path)
    assert server.cli("migrate").returncode == 0
    result = server.cli(
        "products",
        "create",
        "--slug",
        "acme",
        "--name",
        "Acme",
        "--origin",
        "https://App.Acme.com/",
        "--origin",
        "http://localhost:3000",
    )
    assert result.returncode == 0, result.stderr
    assert "https://app.acme.com" in result.stdout  # normalized
    keys = dict(KEY_LINE.findall(result.stdout))
    assert set(keys) == {"pk_live", "sk_live", "pk_test", "sk_test"}
    for name, key in keys.items():
        assert key.startswith(name + "_")
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", key[len(name) + 1 :]), key

    db = sqlite3.connect(tmp_path / "hub.db")
    dump = "\n".join(db.iterdump())
    stored = {row[0] for row in db.execute("SELECT key_hash FROM product_keys")}
    for key in keys.values():
        assert key not in dump
        assert hash_secret(key) in stored

    again = server.cli("products", "create", "--slug", "acme", "--name", "Acme again")
    assert again.returncode != 0
    assert "exists already" in again.stderr
    bad = server.cli(
        "products", "create", "--slug", "x", "--name", "X", "--origin", "https://*.acme.com"
    )
    assert bad.returncode != 0 and "not an origin" in bad.stderr
    listing = server.cli("products", "list")
    assert "acme" in listing.stdout and "sk_" not in listing.stdout


def test_rotate_key_replaces_the_secret_key_at_once(tmp_path):
    server = HubServer(workdir=tmp_path)
    assert server.cli("migrate").returncode == 0
    created = server.cli("products", "create", "--slug", "acme", "--name", "Acme")
    old = dict(KEY_LINE.findall(created.stdout))["sk_live"]
    rotated = server.cli("products", "rotate-key", "acme", "--kind", "secret", "--env", "live")
    assert rotated.returncode == 0, rotated.stderr
    [new] = re.findall(r"sk_live_[A-Za-z0-9_-]{43}", rotated.stdout)
    db = sqlite3.connect(tmp_path / "hub.db")
    rows = dict(
        db.execute(
            "SELECT key_hash, revoked_reason FROM product_keys"
            " WHERE kind = 'secret' AND env = 'live'"
        ).fetchall()
    )
    assert rows == {hash_secret(old): "rotated", hash_secret(new): None}
    missing = server.cli("products", "rotate-key", "nope")
    assert missing.returncode != 0 and "no product" in missing.stderr


def test_production_refuses_to_start_without_a_signing_key(tmp_path):
    env = {
        k: v for k, v in HubServer(workdir=tmp_path).env().items() if k != "HUB_JWT_PRIVATE_KEYS"
    }
    env["HUB_ENV"] = "production"
    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "HUB_JWT_PRIVATE_KEYS" in result.stderr
    assert not (tmp_path / "hub-dev-key.pem").exists()


def test_production_refuses_several_workers_without_shared_services(tmp_path):
    base = {**HubServer(workdir=tmp_path).env(), "HUB_ENV": "production"}
    serve = [sys.executable, "-m", "hub.cli", "serve", "--port", str(free_port())]
    cases = [
        ({}, ["--workers", "2"], "needs PostgreSQL"),
        ({"WEB_CONCURRENCY": "3"}, [], "needs PostgreSQL"),
        ({"DATABASE_URL": "postgresql://nobody@127.0.0.1/none"}, ["--workers", "2"], "needs Redis"),
    ]
    for extra, args, message in cases:
        result = subprocess.run(
            [*serve, *args],
            cwd=tmp_path,
            env={**base, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0, (extra, args)
        assert message in result.stderr, result.stderr


@pytest.mark.postgres
@pytest.mark.redis
def test_several_workers_share_one_port_and_restart_their_sockets(
    tmp_path, postgres_url, redis_url
):
    if redis_url is None:
        pytest.skip("Redis (REDIS_URL) is not configured")
    server = HubServer(
        workdir=tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        extra_env={"HUB_WORKERS": "2"},
    )
    server.start()
    try:
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid), "-f", "multiprocessing.spawn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        assert len(children) == 2
        product = create_product(server)

        async def scenario() -> list[dict]:
            async with httpx.AsyncClient(base_url=server.url) as client:
                tabs = []
                for _ in range(6):  # spread over both workers by the kernel
                    _, token = await api_user(client, product["sk_live"])
                    tabs.append(await cable(server.url, token))
                server.process.send_signal(signal.SIGTERM)
                return [
                    await tab.expect(lambda f: f.get("type") == "disconnect", within=10)
                    for tab in tabs
                ]

        frames = asyncio.run(scenario())
        restart = {"type": "disconnect", "reason": "server_restart", "reconnect": True}
        assert frames == [restart] * 6
        assert server.process.wait(20) == 0
    finally:
        server.stop()


@pytest.mark.postgres
@pytest.mark.redis
def test_the_procfile_layout_starts_in_production(tmp_path, postgres_url, redis_url):
    if redis_url is None:
        pytest.skip("Redis (REDIS_URL) is not configured")
    # release: notification-hub migrate; web: notification-hub serve, two workers.
    with production_hub(
        tmp_path, DATABASE_URL=postgres_url, REDIS_URL=redis_url, HUB_WORKERS="2"
    ) as server:
        answers = [httpx.get(server.url + "/readyz", timeout=5) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 6
        assert httpx.get(server.url + "/api/v1/dev/test_notification").status_code == 404


def test_development_generates_a_persistent_private_key_file(tmp_path):
    server = HubServer(workdir=tmp_path, private_key_pem="")
    server.start()
    try:
        key_file = tmp_path / "hub-dev-key.pem"
        assert key_file.exists()
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert "generated a development JWT signing key" in server.logs()
        first_kid = httpx.get(server.url + "/.well-known/jwks.json").json()["keys"][0]["kid"]
    finally:
        server.stop()
    server.start()  # a restart reuses the same key: tokens issued before stay valid
    try:
        assert (
            httpx.get(server.url + "/.well-known/jwks.json").json()["keys"][0]["kid"] == first_kid
        )
    finally:
        server.stop()


def test_version_comes_from_the_package_metadata(tmp_path):
    result = subprocess.run(
        [str(Path(sys.executable).with_name("notification-hub")), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"notification-hub {importlib.metadata.version('notification-hub')}\n"


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def test_every_option_and_argument_has_help_and_shows_its_default():
    for parser in _parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            assert action.help, (parser.prog, action.dest)
            if action.default not in (None, False, argparse.SUPPRESS):
                shown = " ".join(text.split())  # the help wraps lines
                assert f"(default: {action.default})" in shown, (parser.prog, action.dest)
    rotate = HubServer(workdir=Path(".")).cli("products", "rotate-key", "--help").stdout
    assert "the key's environment (default: live)" in rotate
    assert "which key (default: secret)" in rotate


def test_products_list_prints_aligned_columns_under_a_header(tmp_path):
    server = HubServer(workdir=tmp_path)
    assert server.cli("migrate").returncode == 0
    assert "no products yet" in server.cli("products", "list").stdout
    for slug, name in (("acme", "Acme Corporation"), ("a-much-longer-slug", "B")):
        assert server.cli("products", "create", "--slug", slug, "--name", name).returncode == 0
    server.cli("products", "set-origins", "acme", "https://app.acme.com", "https://acme.com")
    lines = server.cli("products", "list").stdout.splitlines()
    assert lines[0].split() == ["SLUG", "NAME", "ALLOWED", "ORIGINS"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"acme", "a-much-longer-slug"}
    name_column = lines[0].index("NAME")
    origins_column = lines[0].index("ALLOWED ORIGINS")
    assert rows["acme"].index("Acme Corporation") == name_column
    assert rows["acme"][origins_column:] == "https://acme.com https://app.acme.com"  # sorted
    assert rows["a-much-longer-slug"][origins_column:] == "(none)"


def test_migrate_says_which_revisions_it_applied(tmp_path):
    server = HubServer(workdir=tmp_path)
    head = revision_name(head_revision())
    migrate(server.env()["DATABASE_URL"], "0003")
    first = server.cli("migrate")
    assert first.returncode == 0, first.stderr
    # Every revision after 0003 in order, whichever come between 0004 and the head.
    assert first.stdout.startswith("applied 0004_identity_pools, 0005_refresh_grace, ")
    assert first.stdout.endswith(f", {head}; the database is at {head}\n")
    again = server.cli("migrate")
    assert again.stdout == f"nothing to do: the database is already at {head}\n"


def test_local_state_is_git_ignored():
    for path in ("hub.db", "hub-dev-key.pem", "some/where/key.pem", ".env"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
        assert ignored.returncode == 0, path
