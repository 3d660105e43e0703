"""Configuration mistakes: each is answered by one line naming the setting and what to do, and
a non-zero exit, never a traceback; no password or key material appears in any of it. Each
test runs the real `notification-hub` command in a scratch directory with a crafted
environment."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from auth.tokens import generate_private_key_pem
from hub.migrate import head_revision, migrate, revision_name
from tests.conftest import scratch_postgres
from tests.support import free_port, revisions_after, run_async

# The installed console script, beside this interpreter (as an operator runs it).
HUB = Path(sys.executable).with_name("notification-hub")
PASSWORD = "Canary-Pass-7x9"  # in URLs below: it must never be printed
KEY = generate_private_key_pem()


def hub_command(
    workdir: Path, *args: str, timeout: float = 60, **settings: str
) -> subprocess.CompletedProcess[str]:
    """`notification-hub ARGS` in `workdir`, with only these of the hub's settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HUB_")
        and k not in ("DATABASE_URL", "REDIS_URL", "SMTP_URL", "PORT", "HOST", "WEB_CONCURRENCY")
    }
    env.update({"HUB_LOG_LEVEL": "info", "PYTHONUNBUFFERED": "1", **settings})
    return subprocess.run(
        [str(HUB), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def refusal(result: subprocess.CompletedProcess[str], *, lines: int = 1) -> str:
    """The one line a refused command printed (after at most `lines - 1` log lines)."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert PASSWORD not in output
    assert "PRIVATE KEY" not in output and KEY.splitlines()[1] not in output
    printed = result.stderr.strip().splitlines()
    assert 1 <= len(printed) <= lines, output
    assert printed[-1].startswith("notification-hub: "), output
    return printed[-1]


def production(**settings: str) -> dict[str, str]:
    return {"HUB_ENV": "production", "HUB_JWT_PRIVATE_KEYS": KEY, **settings}


def serve_args() -> list[str]:
    return ["serve", "--port", str(free_port())]


def test_production_refuses_to_start_without_database_url(tmp_path):
    line = refusal(hub_command(tmp_path, *serve_args(), **production()))
    assert "HUB_ENV=production needs DATABASE_URL" in line and "PostgreSQL" in line
    assert not (tmp_path / "hub.db").exists()


def test_production_refuses_a_database_without_the_newest_schema(tmp_path):
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    line = refusal(
        hub_command(tmp_path, *serve_args(), **production(DATABASE_URL=f"sqlite:///{empty}"))
    )
    assert line == (
        f"notification-hub: the database at {empty} has no hub schema:"
        " run `notification-hub migrate`"
    )
    missing = tmp_path / "missing.db"
    line = refusal(
        hub_command(tmp_path, *serve_args(), **production(DATABASE_URL=f"sqlite:///{missing}"))
    )
    assert f"no hub database at {missing}" in line
    assert not missing.exists()  # a production start creates nothing


@pytest.mark.postgres
def test_production_refuses_a_postgres_database_behind_the_newest_schema(tmp_path):
    with scratch_postgres() as url:  # its own: the session's database is at the newest
        if url is None:
            pytest.skip("PostgreSQL (DATABASE_URL) is not configured")
        migrate(url, "0003")
        parts = urlsplit(url)
        user, host, port = parts.username or "postgres", parts.hostname, parts.port or 5432
        with_password = parts._replace(netloc=f"{user}:{PASSWORD}@{host}:{port}").geturl()
        result = hub_command(tmp_path, *serve_args(), **production(DATABASE_URL=with_password))
        line = refusal(result)
        head = revision_name(head_revision())
        assert f"is at schema 0003_keys_and_credentials, this hub needs {head}" in line
        assert line.endswith("run `notification-hub migrate`")
        assert f"{user}:[REDACTED]@" in line  # the URL is named, its password masked
        migrated = hub_command(tmp_path, "migrate", DATABASE_URL=url)
        assert migrated.returncode == 0, migrated.stderr
        assert migrated.stdout.strip() == (
            f"applied {revisions_after('0003')}; the database is at {head}"
        )


def test_an_unreachable_database_is_waited_for_then_refused_in_one_line(tmp_path):
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/hub"
    started = time.monotonic()
    result = hub_command(tmp_path, *serve_args(), DATABASE_URL=url)
    took = time.monotonic() - started
    line = refusal(result, lines=2)  # the log line saying it waits, then the refusal
    assert line == (
        "notification-hub: DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:1 (Connection"
        " refused, for 5 s): is it running, and is the address right?"
    )
    assert (
        "waiting up to 5 s for the database at postgresql://postgres:[REDACTED]@127.0.0.1:1/hub"
        " (Connection refused)" in result.stderr
    )
    assert 4.5 < took < 30


@pytest.mark.postgres
def test_migrate_names_a_database_that_does_not_exist(tmp_path, postgres_url):
    parts = urlsplit(postgres_url)
    host, port, user = parts.hostname, parts.port or 5432, parts.username or "postgres"
    url = f"postgresql://{user}:{PASSWORD}@{host}:{port}/does_not_exist"
    line = refusal(hub_command(tmp_path, "migrate", DATABASE_URL=url))
    assert line == (
        f"notification-hub: DATABASE_URL: the database 'does_not_exist' does not exist on"
        f" {host}:{port}; create it (createdb -h {host} -p {port} -U {user} does_not_exist),"
        " then run `notification-hub migrate`"
    )


def test_no_password_reaches_the_terminal(tmp_path):
    """A database or Redis URL with a password, in commands refused for it: the password
    never shows (`refusal` checks each output for it)."""
    database = f"postgresql://hub:{PASSWORD}@127.0.0.1:1/hub"
    redis = f"redis://hub:{PASSWORD}@127.0.0.1:1/0"
    for args, settings in [
        (serve_args(), production(DATABASE_URL=database, REDIS_URL=redis)),
        (["migrate"], {"DATABASE_URL": database}),
        (["products", "list"], {"DATABASE_URL": database, "REDIS_URL": redis}),
        (serve_args(), {"REDIS_URL": f"redis://hub:{PASSWORD}@127.0.0.1:1/x"}),
        (["migrate"], {"DATABASE_URL": f"postgresql://hub:{PASSWORD}@127.0.0.1:1x/hub"}),
        # In the query string, and with a space in it.
        (
            ["products", "list"],
            {"DATABASE_URL": f"postgresql://hub@127.0.0.1:1/x?password={PASSWORD}"},
        ),
        (
            serve_args(),
            production(DATABASE_URL=f"postgresql://hub@127.0.0.1:1/x?password={PASSWORD}"),
        ),
        (["migrate"], {"DATABASE_URL": f"postgresql://hub:a {PASSWORD}@127.0.0.1:1/hub"}),
        (serve_args(), {"HUB_PUBLIC_URL": f"ftp://u:{PASSWORD}@x"}),
    ]:
        refusal(hub_command(tmp_path, *args, **settings), lines=2)


OPERATOR_COMMANDS = [
    ["products", "list"],
    ["products", "create", "--slug", "acme", "--name", "Acme"],
    ["products", "set-origins", "acme", "https://acme.example"],
    ["products", "set-verification", "acme", "--require-verified-email"],
    ["products", "rotate-key", "acme"],
    ["subscriptions", "set", "1", "active"],
    ["prune", "--days", "30"],
]


def test_operator_commands_never_create_a_database(tmp_path):
    for command in OPERATOR_COMMANDS:
        line = refusal(hub_command(tmp_path, *command))
        assert line == (
            f"notification-hub: no hub database at {tmp_path / 'hub.db'} (DATABASE_URL is"
            " unset: ./hub.db): set DATABASE_URL, run from the hub's directory, or run"
            " `notification-hub migrate` to create it"
        ), command
        assert not (tmp_path / "hub.db").exists(), command
    sqlite3.connect(tmp_path / "other.db").close()  # a file, but not a hub's
    for command in OPERATOR_COMMANDS:
        result = hub_command(tmp_path, *command, DATABASE_URL="sqlite:///other.db")
        assert refusal(result).endswith("has no hub schema: run `notification-hub migrate`")


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "unix://",
        "redis://127.0.0.1:notaport/0",
        f"redis://:{PASSWORD}@127.0.0.1:99999/0",
        "redis://127.0.0.1:6379/zero",
        "redis://",
        "redis+cluster://127.0.0.1",
    ],
)
def test_a_malformed_redis_url_is_one_line(tmp_path, url):
    line = refusal(hub_command(tmp_path, *serve_args(), REDIS_URL=url))
    assert line.startswith("notification-hub: REDIS_URL")
    assert "redis://" in line or "redis+cluster://" in line  # the expected form


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"HUB_JWT_PRIVATE_KEYS": "garbage"}, "HUB_JWT_PRIVATE_KEYS is not a usable EC P-256"),
        (
            {"HUB_JWT_PRIVATE_KEYS": KEY.replace(KEY.splitlines()[1], KEY.splitlines()[1][:20])},
            "HUB_JWT_PRIVATE_KEYS is not a usable EC P-256",
        ),
        ({"PORT": "70000"}, "PORT must be from 1 to 65535, got 70000"),
        ({"PORT": "http"}, "PORT must be a whole number"),
        ({"HUB_LOG_LEVEL": "loud"}, "HUB_LOG_LEVEL must be one of debug, info, warning"),
        ({"SMTP_URL": "notaurl"}, "SMTP_URL must look like smtp://"),
        ({"HUB_WORKERS": "0"}, "HUB_WORKERS must be at least 1"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a sqlite:// or postgresql://"),
        ({"DATABASE_URL": "sqlite:////no/such/dir/hub.db"}, "the directory of the SQLite file"),
        ({"HUB_PUBLIC_URL": "hub.example.com"}, "HUB_PUBLIC_URL must be the hub's address"),
        ({"HUB_PUBLIC_URL": "https://hub.example.com:443x"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_DEV_KEY_FILE": "/no/such/dir/key.pem"}, "HUB_DEV_KEY_FILE: the directory of"),
        (
            {"DATABASE_URL": f"postgresql://u:{PASSWORD}@db:5432x/hub"},
            "DATABASE_URL has a malformed port",
        ),
        # Red-team review: each of these was a traceback, or accepted and broken later.
        ({"DATABASE_URL": "sqlite://"}, "an in-memory SQLite database cannot be used"),
        ({"DATABASE_URL": "sqlite:///:memory:"}, "an in-memory SQLite database cannot be used"),
        (
            {"DATABASE_URL": f"postgresql://postgres@{'a' * 64}.example.com/x"},
            "DATABASE_URL: the host name is malformed",
        ),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/"}, "the name of the hub's"),
        ({"DATABASE_URL": f"postgresql://u:{PASSWORD}@[::1/x"}, "DATABASE_URL has a malformed"),
        ({"REDIS_URL": f"redis://:{PASSWORD}@[::1"}, "REDIS_URL is malformed"),
        ({"HUB_PUBLIC_URL": "http://[::1"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": f"https://u:{PASSWORD}@hub.example.com"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": "http://hüb.example.com"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": "https://hub.example.com/app"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": "https://hub.example.com/?x=1"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": "https://hub.example.com#x"}, "HUB_PUBLIC_URL must be"),
        ({"HUB_PUBLIC_URL": "https://hub.example.com:0"}, "HUB_PUBLIC_URL must be"),
        (
            {"HUB_DB_STATEMENT_TIMEOUT": "99999999999"},
            "HUB_DB_STATEMENT_TIMEOUT must be at most 86400",
        ),
        (
            {"HUB_DB_IDLE_IN_TRANSACTION_TIMEOUT": "99999999999"},
            "HUB_DB_IDLE_IN_TRANSACTION_TIMEOUT must be at most 86400",
        ),
        ({"HUB_ARGON2_MEMORY_KIB": "99999999999"}, "HUB_ARGON2_MEMORY_KIB must be at most"),
        ({"HUB_ARGON2_TIME_COST": "1000"}, "HUB_ARGON2_TIME_COST must be at most 64"),
        ({"HUB_ARGON2_PARALLELISM": "1000"}, "HUB_ARGON2_PARALLELISM must be at most 64"),
        ({"HUB_WORKERS": "2"}, "HUB_WORKERS=2 needs Redis: set REDIS_URL"),
        ({"HUB_WORKERS": "100000"}, "HUB_WORKERS must be at most 1024"),
        ({"HUB_WEBHOOKS_ALLOW_INTERNAL": "sure"}, "HUB_WEBHOOKS_ALLOW_INTERNAL must be 1 or 0"),
        ({"HUB_RATE_LOGIN_IP": "0/minute"}, "HUB_RATE_LOGIN_IP: a rate of 0"),
        ({"HUB_ACCESS_TOKEN_TTL": "\uff15"}, "HUB_ACCESS_TOKEN_TTL must be a whole number"),
    ],
)
def test_other_configuration_mistakes_are_one_line(tmp_path, settings, expected):
    line = refusal(hub_command(tmp_path, "serve", **settings))
    assert expected in line


def test_serve_workers_without_redis_is_refused_in_development(tmp_path):
    line = refusal(hub_command(tmp_path, *serve_args(), "--workers", "2"))
    assert "HUB_WORKERS=2 needs Redis" in line
    assert not (tmp_path / "hub.db").exists()


def test_unreadable_key_files_are_one_line(tmp_path):
    (tmp_path / "key.bin").write_bytes(b"\xff\xfe\x00binary")
    line = refusal(
        hub_command(tmp_path, *serve_args(), HUB_JWT_PRIVATE_KEYS_FILE=str(tmp_path / "key.bin"))
    )
    assert "HUB_JWT_PRIVATE_KEYS_FILE" in line and "not a PEM file" in line
    (tmp_path / "keydir").mkdir()
    line = refusal(hub_command(tmp_path, *serve_args(), HUB_DEV_KEY_FILE=str(tmp_path / "keydir")))
    assert "HUB_DEV_KEY_FILE" in line and "is not a file" in line
    assert not (tmp_path / "hub.db").exists()  # refused before the database is created


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["subscriptions", "set", "99999999999999999999", "active"], "argument org_id: not an id"),
        (["products", "create", "--slug", "x", "--name", "n" * 201], "at most 200 characters"),
        (["products", "create", "--slug", "s" * 65, "--name", "n"], "at most 64 characters"),
        (
            ["products", "create", "--slug", "x", "--name", "n", "--mail-from-address", "a" * 321],
            "at most 320 characters",
        ),
    ],
)
def test_operator_arguments_beyond_their_columns_are_refused_by_the_parser(
    tmp_path, args, expected
):
    result = hub_command(tmp_path, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert expected in result.stderr


def test_production_without_smtp_url_warns_once_at_start(tmp_path):
    import socket

    assert hub_command(tmp_path, "migrate").returncode == 0
    with socket.socket() as taken:  # the server then fails to listen, and ends
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = hub_command(
            tmp_path, "serve", "--port", port, **production(DATABASE_URL="sqlite:///hub.db")
        )
        assert result.stderr.count("SMTP_URL is unset: this hub sends no emails") == 1
        result = hub_command(
            tmp_path,
            "serve",
            "--port",
            port,
            **production(DATABASE_URL="sqlite:///hub.db", SMTP_URL="smtp://mail.example.com:587"),
        )
        assert "SMTP_URL is unset" not in result.stderr


def test_prune_says_day_and_hour_in_the_singular(tmp_path):
    assert hub_command(tmp_path, "migrate").returncode == 0
    result = hub_command(tmp_path, "prune", "--days", "1", "--idempotency-hours", "1")
    assert result.returncode == 0, result.stderr
    assert "older than 1 day and" in result.stdout and "older than 1 hour" in result.stdout


def test_a_broken_key_file_names_its_setting(tmp_path):
    (tmp_path / "key.pem").write_text(KEY.replace("EC", "XX").replace("\n", "\n\n", 3))
    line = refusal(
        hub_command(
            tmp_path,
            *serve_args(),
            **production(HUB_JWT_PRIVATE_KEYS_FILE=str(tmp_path / "key.pem")),
            DATABASE_URL="sqlite:///hub.db",
        )
    )
    assert f"HUB_JWT_PRIVATE_KEYS_FILE ({tmp_path / 'key.pem'}) is not a usable" in line
    (tmp_path / "hub-dev-key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n")
    line = refusal(hub_command(tmp_path, *serve_args()))
    assert "the development key file" in line and "(HUB_DEV_KEY_FILE)" in line


def test_an_out_of_range_port_option_is_refused_by_the_parser(tmp_path):
    result = hub_command(tmp_path, "serve", "--port", "70000")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --port: must be from 1 to 65535, not 70000" in result.stderr


def test_a_key_can_be_generated_where_production_lacks_one(tmp_path):
    result = hub_command(tmp_path, "keys", "generate-jwt", HUB_ENV="production")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-----BEGIN PRIVATE KEY-----")


def test_the_rate_limiter_takes_a_unix_socket_redis_url(tmp_path):
    """`unix://` passed the settings and then failed the start: limits calls it
    `redis+unix://`."""
    from auth.ratelimit import RateLimiter
    from infra.errors import HubError

    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    socket_path = tmp_path / "redis.sock"
    redis = subprocess.Popen(
        [
            server,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )

    async def pubsub_round_trip() -> None:
        # Its keepalive option (TCP only) failed every connection: /readyz stayed 503.
        from infra.pubsub import RedisPubSub

        pubsub = RedisPubSub(f"unix://{socket_path}")
        assert await pubsub._client.ping()
        await pubsub._client.aclose()

    async def three_hits() -> None:
        limiter = RateLimiter(f"unix://{socket_path}", "unixtest")
        await limiter.hit("2/minute", "k")
        await limiter.hit("2/minute", "k")
        # Counted in Redis: an unreachable store would let every attempt through.
        with pytest.raises(HubError) as refused:
            await limiter.hit("2/minute", "k")
        assert refused.value.status == 429

    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        run_async(three_hits())
        run_async(pubsub_round_trip())
    finally:
        redis.terminate()
        redis.wait(10)
