"""Logging that cannot leak credentials.

Every handler formats through `RedactingFormatter`, which masks anything shaped like a JWT, an
API key, a password hash, a bearer header, a secret-named field or the password in a URL
(`postgresql://user:…@host`) in the final text, tracebacks and uvicorn's access lines (which
carry `/cable?token=…`) included. Redaction works on shapes, so a credential is caught
wherever it ends up, not only where someone remembered to mask it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

REDACTED = "[REDACTED]"

# Field names whose values are masked (names, not secrets).
_SECRET_NAMES = "|".join(
    (
        "password",
        "password_confirmation",
        "new_password",
        "token",
        "access_token",
        "refresh_token",
        "login_token",
        "id_token",
        "client_secret",
        "secret",
        "api_key",
        "key",
    )
)
# scheme://user:password@host (a database, Redis or SMTP URL); the user stays readable. Up to
# the last @: a password with a stray @ in it is still masked whole.
# The password may hold a space (`user:S3c ret@host`): up to the last @ before the host's path.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):(?:[^\n/?#]*|\S+)@")
# A query parameter whose name looks secret (`?password=…`, `&sslpassword=…`, `?api_key=…`;
# `?code=…&state=…`: an OpenID Connect callback's one-time code and its state).
_SECRET_QUERY = re.compile(
    r"(?i)([?&;][^=&#\s?;]*(?:pass|pwd|secret|token|key|auth|credential|code|state)[^=&#\s?;]*=)"
    r"[^&#\s;]*"
)
_URL_SECRETS: list[tuple[re.Pattern[str], str]] = [
    (_URL_PASSWORD, rf"\1:{REDACTED}@"),
    (_SECRET_QUERY, rf"\1{REDACTED}"),
]
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(?:pk|sk|rk)_(?:live|test)_[A-Za-z0-9_-]{6,}"), REDACTED),
    # Workspace tokens, OAuth client secrets, extension keys, console invitation links.
    (re.compile(r"\b(?:wksp|hubsec|ext|inv)_[A-Za-z0-9_-]{6,}"), REDACTED),
    (re.compile(r"\$argon2(?:id|i|d)\$[^\s'\"]+"), REDACTED),
    (re.compile(r"(?i)\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    (re.compile(rf"(?i)\b({_SECRET_NAMES})=[^&\s\"']+"), rf"\1={REDACTED}"),
    (re.compile(rf"(?i)([\"']({_SECRET_NAMES})[\"']\s*:\s*)[\"'][^\"']*[\"']"), rf'\1"{REDACTED}"'),
    *_URL_SECRETS,
]


def redact_url(url: str) -> str:
    """`url` with the password it may carry masked (in its user part and in any query
    parameter whose name looks secret), for a message that names the URL. (`redact` would
    mask it too; this states the intent where a URL is printed on purpose.)"""
    for pattern, replacement in _URL_SECRETS:
        url = pattern.sub(replacement, url)
    return url


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFormatter(logging.Formatter):
    """A Formatter whose output has every credential-shaped string masked.

    A record may set `hub_allow_secret=True` (the development console mailer does, to show
    the reset link); that is honoured only while `allow_secrets` is on, i.e. never in production.
    """

    allow_secrets = False

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if self.allow_secrets and getattr(record, "hub_allow_secret", False):
            return text
        return redact(text)


# The id of the HTTP request or WebSocket being served, for every log line it causes.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


class JsonFormatter(RedactingFormatter):
    """One JSON object per line (production): time, level, logger, message, request_id, and
    the traceback if any — redacted like every other line.

    The message and the traceback are redacted before they are encoded: masking the encoded
    line could eat a JSON escape (`token=…\\"` in a cable connect's access line lost its
    backslash), and the line was no longer JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        current = request_id.get()
        if current is not None:
            entry["request_id"] = current
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def logging_config(level: str = "info", *, development: bool = True) -> dict[str, Any]:
    """A `logging.config.dictConfig` (also handed to uvicorn as its `log_config`): readable
    lines in development, JSON lines in production."""
    RedactingFormatter.allow_secrets = development
    formatter: dict[str, Any] = {"()": "infra.logs.JsonFormatter"}
    if development:
        formatter = {
            "()": "infra.logs.RedactingFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s",
        }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"redacting": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "redacting",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            "alembic": {"level": "WARNING"},
            "databases": {"level": "WARNING"},
            # httpx logs every request's full URL at INFO: an alert's Slack or webhook URL is a
            # secret, and so is the query of an OpenID Connect token request.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
