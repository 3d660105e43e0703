"""Every setting the hub reads, from environment variables only.

One frozen dataclass, built once at start-up by `Settings.from_env()`. The README's settings
table documents each variable; keep the two in step.

The module is longer than most (about 430 lines) on purpose: every variable, its default, its
bounds and the check that refuses a bad value at start-up sit in this one file, so a setting
is read, documented and reviewed in one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from infra.console_settings import ConsoleSettings
from infra.logs import redact_url
from infra.names import ORIGIN, SLUG


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and why."""


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        if not raw.strip().isascii():  # int() takes other scripts' digits: '５'
            raise ValueError
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name} must be 1 or 0 (true/false, yes/no), got {env.get(name)!r}")


# The most worker processes `serve` starts (HUB_WORKERS and --workers alike).
MAX_WORKERS = 1024
# PostgreSQL's timeouts: a day at most (it refuses values past 2^31 ms at connect).
MAX_DB_TIMEOUT_SECONDS = 86400
# argon2: 4 GiB of memory, 64 passes, 64 lanes at most (beyond, hashing fails: 500 at login).
MAX_ARGON2_MEMORY_KIB = 4 * 1024 * 1024
MAX_ARGON2_TIME_COST = 64
MAX_ARGON2_PARALLELISM = 64


def _read_text_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}: cannot read {path}: {exc}") from None


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


@dataclass(frozen=True)
class RateLimits:
    """`limits` strings such as "10/minute;100/hour" for each limited action."""

    login_ip: str = "30/minute;300/hour"
    login_account: str = "10/minute;50/hour"
    register_ip: str = "10/minute;100/hour"
    forgot_ip: str = "10/minute;100/hour"
    forgot_account: str = "3/minute;10/hour"
    # Verification emails a logged-in user may ask for again, per user.
    verify_resend: str = "3/minute;10/hour"
    # Verification emails of any cause (register, joining another org, resend) per address in
    # a pool and environment; over it they are skipped, so nobody can mail-bomb an address.
    verify_mail_account: str = "4/minute;10/hour"
    refresh_ip: str = "120/minute"
    refresh_session: str = "30/minute"
    # Every public endpoint, per product environment (a leaked pk_ key cannot flood it).
    public_product: str = "1200/minute"
    # The server API, per key / workspace token / OAuth application.
    server_key: str = "6000/minute"
    # The console's "send a test notification", per product environment: a member cannot
    # bury a user's inbox or the audit log under test sends.
    test_notification: str = "10/minute;100/hour"


@dataclass(frozen=True)
class CableLimits:
    """What one cable client may hold and do (`HUB_CABLE_*`)."""

    # Channel subscriptions of one socket, and the size of each identifier (UTF-8 bytes).
    max_subscriptions: int = 32
    max_identifier_bytes: int = 1024
    # Open sockets of one user of a product environment, counted per hub process.
    max_sockets_per_user: int = 16
    # Actions (`message` commands) of one socket: a token bucket, refilled at this rate.
    actions_per_second: int = 10
    action_burst: int = 20
    # With Redis: how long the socket count of a crashed hub process keeps counting.
    socket_lease_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CableLimits:
        return cls(
            max_subscriptions=_int(env, "HUB_CABLE_MAX_SUBSCRIPTIONS", cls.max_subscriptions, 1),
            max_identifier_bytes=_int(
                env, "HUB_CABLE_MAX_IDENTIFIER_BYTES", cls.max_identifier_bytes, 64
            ),
            max_sockets_per_user=_int(
                env, "HUB_CABLE_MAX_SOCKETS_PER_USER", cls.max_sockets_per_user, 1
            ),
            actions_per_second=_int(env, "HUB_CABLE_ACTIONS_PER_SECOND", cls.actions_per_second, 1),
            action_burst=_int(env, "HUB_CABLE_ACTION_BURST", cls.action_burst, 1),
            socket_lease_seconds=_int(
                env, "HUB_CABLE_SOCKET_LEASE_SECONDS", cls.socket_lease_seconds, 3
            ),
        )


@dataclass(frozen=True)
class Settings:
    env: str = "development"
    database_url: str = "sqlite:///./hub.db"
    # REDIS_URL: unset, one process (in-memory broker and limits); `redis://`, `rediss://` or
    # `unix://`, one Redis shared by every process; `redis+cluster://[user:password@]host:port
    # [,host:port…]`, Redis Cluster ≥ 7 (any reachable nodes as seeds; the rest are found):
    # streams on sharded pub/sub, leases and rate limits on the shard of their key.
    redis_url: str | None = None
    redis_prefix: str = "hub"
    smtp_url: str | None = None
    mail_from: str = "no-reply@localhost"
    public_url: str = "http://127.0.0.1:8000"
    jwt_issuer: str = "notification-hub"
    jwt_private_keys_pem: str | None = None
    dev_key_file: str = "./hub-dev-key.pem"
    access_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    refresh_reuse_grace: int = 10
    login_token_ttl: int = 300
    reset_token_ttl: int = 3600
    verify_token_ttl: int = 86400
    max_body_bytes: int = 64 * 1024
    max_head_bytes: int = 64 * 1024
    # Seconds a request's line and headers may take to arrive (then 408 and close).
    head_timeout: int = 10
    body_timeout: int = 60
    argon2_memory_kib: int = 19 * 1024
    argon2_time_cost: int = 2
    argon2_parallelism: int = 1
    hash_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    cable: CableLimits = field(default_factory=CableLimits)
    console: ConsoleSettings = field(default_factory=ConsoleSettings)
    log_level: str = "info"
    host: str = "127.0.0.1"
    port: int = 8000
    trusted_proxies: str = "127.0.0.1"
    workers: int = 1
    metrics_token: str | None = None
    # PostgreSQL ends a session idle in a transaction / a statement after this many seconds.
    db_idle_in_transaction_timeout: int = 60
    db_statement_timeout: int = 30
    # Production: let alert webhooks be http:// or inside our network (self-hosted receivers).
    webhooks_allow_internal: bool = False
    # The product the demo page at /demo/ is for. Production serves the page only when this
    # names one; development serves it for this product, or for its own `demo` product.
    demo_product: str | None = None

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def strict_webhooks(self) -> bool:
        """Alert webhooks must be https and public (production, unless allowed internal)."""
        return self.production and not self.webhooks_allow_internal

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        keys_pem = env.get("HUB_JWT_PRIVATE_KEYS") or None
        keys_file = env.get("HUB_JWT_PRIVATE_KEYS_FILE")
        if keys_file:
            try:
                with open(keys_file, encoding="ascii") as fh:
                    keys_pem = fh.read()
            except OSError as exc:
                raise SettingsError(
                    f"HUB_JWT_PRIVATE_KEYS_FILE: cannot read {keys_file}: {exc}"
                ) from None
            except UnicodeDecodeError:
                raise SettingsError(
                    f"HUB_JWT_PRIVATE_KEYS_FILE: {keys_file} is not a PEM file (it is not text);"
                    " generate a key with `notification-hub keys generate-jwt`"
                ) from None
        defaults = RateLimits()
        rate_limits = RateLimits(
            **{
                name: env.get(f"HUB_RATE_{name.upper()}") or getattr(defaults, name)
                for name in RateLimits.__dataclass_fields__
            }
        )
        settings = cls(
            env=_choice(env, "HUB_ENV", "development", ("development", "production")),
            database_url=env.get("DATABASE_URL") or cls.database_url,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("HUB_REDIS_PREFIX") or cls.redis_prefix,
            smtp_url=env.get("SMTP_URL") or None,
            mail_from=env.get("HUB_MAIL_FROM") or cls.mail_from,
            public_url=(env.get("HUB_PUBLIC_URL") or cls.public_url).rstrip("/"),
            jwt_issuer=env.get("HUB_JWT_ISSUER") or cls.jwt_issuer,
            jwt_private_keys_pem=keys_pem,
            dev_key_file=env.get("HUB_DEV_KEY_FILE") or cls.dev_key_file,
            access_token_ttl=_int(env, "HUB_ACCESS_TOKEN_TTL", cls.access_token_ttl, 1),
            refresh_token_ttl=_int(env, "HUB_REFRESH_TOKEN_TTL", cls.refresh_token_ttl, 1),
            refresh_reuse_grace=_int(env, "HUB_REFRESH_REUSE_GRACE", cls.refresh_reuse_grace),
            login_token_ttl=_int(env, "HUB_LOGIN_TOKEN_TTL", cls.login_token_ttl, 1),
            reset_token_ttl=_int(env, "HUB_RESET_TOKEN_TTL", cls.reset_token_ttl, 1),
            verify_token_ttl=_int(env, "HUB_VERIFY_TOKEN_TTL", cls.verify_token_ttl, 1),
            max_body_bytes=_int(env, "HUB_MAX_BODY_BYTES", cls.max_body_bytes, 1024),
            max_head_bytes=_int(env, "HUB_MAX_HEADER_BYTES", cls.max_head_bytes, 8192),
            head_timeout=_int(env, "HUB_HEAD_TIMEOUT", cls.head_timeout, 1),
            body_timeout=_int(env, "HUB_BODY_TIMEOUT", cls.body_timeout, 1),
            argon2_memory_kib=_int(
                env,
                "HUB_ARGON2_MEMORY_KIB",
                cls.argon2_memory_kib,
                19 * 1024,
                MAX_ARGON2_MEMORY_KIB,
            ),
            argon2_time_cost=_int(
                env, "HUB_ARGON2_TIME_COST", cls.argon2_time_cost, 2, MAX_ARGON2_TIME_COST
            ),
            argon2_parallelism=_int(
                env, "HUB_ARGON2_PARALLELISM", cls.argon2_parallelism, 1, MAX_ARGON2_PARALLELISM
            ),
            hash_threads=_int(env, "HUB_HASH_THREADS", os.cpu_count() or 2, 1),
            rate_limits=rate_limits,
            cable=CableLimits.from_env(env),
            console=ConsoleSettings.from_env(env, _int, _read_text_file),
            log_level=(env.get("HUB_LOG_LEVEL") or "info").lower(),
            host=env.get("HOST") or cls.host,
            port=_int(env, "PORT", cls.port, 1),
            trusted_proxies=env.get("HUB_TRUSTED_PROXIES") or cls.trusted_proxies,
            metrics_token=env.get("HUB_METRICS_TOKEN") or None,
            db_idle_in_transaction_timeout=_int(
                env,
                "HUB_DB_IDLE_IN_TRANSACTION_TIMEOUT",
                cls.db_idle_in_transaction_timeout,
                0,
                MAX_DB_TIMEOUT_SECONDS,
            ),
            db_statement_timeout=_int(
                env, "HUB_DB_STATEMENT_TIMEOUT", cls.db_statement_timeout, 0, MAX_DB_TIMEOUT_SECONDS
            ),
            webhooks_allow_internal=_flag(env, "HUB_WEBHOOKS_ALLOW_INTERNAL"),
            workers=_int(
                env,
                "HUB_WORKERS",
                _int(env, "WEB_CONCURRENCY", cls.workers, 1, MAX_WORKERS),
                1,
                MAX_WORKERS,
            ),
            demo_product=env.get("HUB_DEMO_PRODUCT") or None,
        )
        if settings.production and not env.get("DATABASE_URL"):
            # Not the ./hub.db of whatever directory the process starts in: an empty file
            # there answered /readyz and failed every API call.
            raise SettingsError(
                "HUB_ENV=production needs DATABASE_URL: set it to your PostgreSQL database"
                " (postgresql://user:password@host:5432/name)"
            )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse configurations that would be unsafe or cannot work."""
        if not self.database_url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise SettingsError("DATABASE_URL must be a sqlite:// or postgresql:// URL")
        _check_database_url(self.database_url)
        _check_public_url(self.public_url)
        if self.port > 65535:
            raise SettingsError(f"PORT must be from 1 to 65535, got {self.port}")
        levels = ("debug", "info", "warning", "error", "critical")
        if self.log_level not in levels:
            raise SettingsError(
                f"HUB_LOG_LEVEL must be one of {', '.join(levels)}, got {self.log_level!r}"
            )
        if self.production and not self.jwt_private_keys_pem:
            raise SettingsError(
                "HUB_ENV=production needs a signing key: set HUB_JWT_PRIVATE_KEYS (PEM) or "
                "HUB_JWT_PRIVATE_KEYS_FILE; generate one with `notification-hub keys generate-jwt`"
            )
        oidc_problem = self.console.oidc_problem(self.public_url)
        if oidc_problem:
            raise SettingsError(oidc_problem)
        if self.workers > 1:
            # Each worker process has its own memory: an SQLite file and an in-memory broker
            # cannot be shared by them (a notification would reach only one worker's sockets).
            if self.production and self.database_url.startswith("sqlite"):
                raise SettingsError(
                    f"HUB_WORKERS={self.workers} in production needs PostgreSQL: set "
                    "DATABASE_URL=postgresql://… (SQLite is for one process in development)"
                )
            if not self.redis_url:
                raise SettingsError(
                    f"HUB_WORKERS={self.workers} needs Redis: set REDIS_URL so "
                    "that a notification reaches the sockets of every worker"
                )
        if self.redis_url:
            _check_redis_url(self.redis_url)
        if self.demo_product is not None and not SLUG.fullmatch(self.demo_product):
            raise SettingsError(
                "HUB_DEMO_PRODUCT must be a product slug (lowercase letters, digits and dashes), "
                f"got {self.demo_product!r}"
            )
        for name in RateLimits.__dataclass_fields__:
            _check_rate(f"HUB_RATE_{name.upper()}", getattr(self.rate_limits, name))


def _check_database_url(url: str) -> None:
    form = "postgresql://user:password@host:5432/name"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (it raises on a malformed port)
    except ValueError:
        raise SettingsError(f"DATABASE_URL has a malformed port (or host): {form}") from None
    if parts.scheme == "sqlite":
        name = url[len("sqlite://") :].lstrip("/").split("?")[0]
        if name in ("", ":memory:") or "mode=memory" in url:
            raise SettingsError(
                "DATABASE_URL: an in-memory SQLite database cannot be used (each connection"
                " would see its own, empty one): name a file, such as sqlite:///./hub.db"
            )
        return
    # No host is PostgreSQL's local socket (postgresql:///name), as psql would read it.
    if parts.hostname:
        _check_host_name("DATABASE_URL", parts.hostname, form)
    if parts.path.strip("/") == "":
        raise SettingsError(
            f"DATABASE_URL needs the name of the hub's database after the host: {form}"
        )


def _check_host_name(setting: str, host: str, form: str) -> None:
    if host.startswith("[") or ":" in host:
        return
    try:
        host.encode("idna")
    except UnicodeError:
        raise SettingsError(
            f"{setting}: the host name is malformed (a part longer than 63 characters,"
            f" or an empty one): {form}"
        ) from None


def _check_public_url(url: str) -> None:
    """An origin (scheme://host[:port]) as browsers send it."""
    problem = (
        "HUB_PUBLIC_URL must be the hub's address as browsers reach it, such as"
        f" https://hub.example.com (scheme://host[:port], no user, path, query or fragment),"
        f" got {redact_url(url)!r}"
    )
    match = ORIGIN.fullmatch(url)
    if not match:
        raise SettingsError(problem)
    port = match.group(3)
    if port is not None and not 1 <= int(port[1:]) <= 65535:
        raise SettingsError(problem)
    if not match.group(2).startswith("["):
        try:
            match.group(2).encode("idna")
        except UnicodeError:
            raise SettingsError(problem) from None


def _check_redis_url(url: str) -> None:
    from infra.redis_clients import is_cluster_url, parse_cluster_url

    if not is_cluster_url(url):
        _check_plain_redis_url(url)
        return
    try:
        parse_cluster_url(url)
    except ValueError as exc:
        raise SettingsError(
            f"REDIS_URL: {exc}; a cluster is redis+cluster://host:port,host:port,…"
        ) from None


def _check_plain_redis_url(url: str) -> None:
    # The URL is never quoted back: it may carry a password.
    form = "such as redis://[:password@]host:6379/0 or unix:///path/to/redis.sock"
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [IPv6 address
        raise SettingsError(f"REDIS_URL is malformed, {form}") from None
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(
            f"REDIS_URL must be a redis://, rediss://, unix:// or redis+cluster:// URL, {form}"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise SettingsError(f"REDIS_URL: a unix:// URL needs the socket's path, {form}")
        return
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    if not parts.hostname or port == 0:
        raise SettingsError(f"REDIS_URL needs a host, and a port from 1 to 65535 if any, {form}")
    if parts.path not in ("", "/") and not parts.path[1:].isdigit():
        raise SettingsError(f"REDIS_URL: the database (the path) must be a number, {form}")


def _check_rate(name: str, value: str) -> None:
    from limits import parse_many

    try:
        rates = parse_many(value)
    except ValueError:
        raise SettingsError(f"{name} must look like '10/minute;100/hour', got {value!r}") from None
    if any(rate.amount < 1 for rate in rates):
        raise SettingsError(
            f"{name}: a rate of 0 refuses every request; use at least 1, got {value!r}"
        )
