"""What a command checks before it does its work, so that a configuration mistake ends it with
one line naming the setting and what to do, never a traceback: the database reached (waiting a
few seconds for one that is starting), the hub's schema there at the newest migration, the
signing keys and the mail URL readable.

The checks run before the event loop serves anything (`asyncio.run` of their own), so their
waits block no request. A message names a database by `redact_url`: no password is printed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple, NoReturn

import sqlalchemy as sa
from databases import Database

from hub import migrate as migrations
from infra.db import connect_database, is_sqlite
from infra.logs import redact_url
from infra.settings import Settings

logger = logging.getLogger("hub.startup")

# How long a command waits for a database that does not answer (yet) before it gives up. A
# database starting beside the hub (compose, a restart) answers within this; one that is
# down or misaddressed should fail the start where the platform sees it and restarts it.
DATABASE_WAIT_SECONDS = 5.0
RETRY_SECONDS = 0.5

MIGRATE_HINT = "run `notification-hub migrate`"


def refuse(message: str) -> NoReturn:
    """End the command with `message` on one line (exit status 1)."""
    raise SystemExit(f"notification-hub: {message}")


def database_place(url: str) -> str:
    """How messages name a database: a SQLite file's absolute path, or the URL redacted."""
    path = sqlite_path(url)
    return str(path) if path is not None else redact_url(url)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, absolute (None for other databases and in-memory ones)."""
    if not is_sqlite(url):
        return None
    name = sa.engine.make_url(url).database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def require_sqlite_file(url: str, *, create: bool) -> None:
    """A SQLite file must exist already (`create`: its directory must), so that a command run
    in the wrong directory says so instead of leaving an empty hub.db there."""
    path = sqlite_path(url)
    if path is None:
        return
    if create and not path.parent.is_dir():
        refuse(f"DATABASE_URL: the directory of the SQLite file {path} does not exist")
    if not create and not path.exists():
        unset = "" if os.environ.get("DATABASE_URL") else " (DATABASE_URL is unset: ./hub.db)"
        refuse(
            f"no hub database at {path}{unset}: set DATABASE_URL, run from the hub's"
            f" directory, or {MIGRATE_HINT} to create it"
        )


class DatabaseProblem(NamedTuple):
    """Why a database cannot be used, in one line, and whether waiting may help."""

    message: str
    transient: bool = False
    reason: str = ""  # of a transient one, for the log line that says the command waits


def describe_database_error(
    exc: BaseException, url: str, waited: float = 0
) -> DatabaseProblem | None:
    """What an error connecting to the database means, naming DATABASE_URL and what to do;
    None for an error that is not about reaching it. `waited`: seconds spent trying."""
    import asyncpg

    parts = sa.engine.make_url(url)
    host, port = parts.host or "localhost", parts.port or 5432
    address = f"{host}:{port}"
    during = f", for {waited:g} s" if waited else ""
    for cause in _causes(exc):
        if isinstance(cause, asyncpg.InvalidCatalogNameError):
            return DatabaseProblem(
                f"DATABASE_URL: the database {parts.database!r} does not exist on {address};"
                f" create it (createdb -h {host} -p {port} -U {parts.username or 'postgres'}"
                f" {parts.database}), then {MIGRATE_HINT}"
            )
        if isinstance(
            cause, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
        ):
            return DatabaseProblem(
                f"DATABASE_URL: PostgreSQL at {address} refused the login ({cause}):"
                " check the user and password"
            )
        # Starting up or shutting down; out of connections (max_connections).
        if isinstance(cause, asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError):
            return DatabaseProblem(
                f"DATABASE_URL: PostgreSQL at {address} is not ready ({cause}{during})",
                True,
                str(cause),
            )
        if is_sqlite(url) and isinstance(cause, sqlite3.DatabaseError):
            return DatabaseProblem(
                f"DATABASE_URL: cannot use the SQLite file {sqlite_path(url)} ({cause}): does"
                " its directory exist, may this user write there, is it a hub database?"
            )
        if isinstance(cause, OSError):  # TimeoutError among them
            if isinstance(cause, TimeoutError):
                reason = "no answer"
            elif (cause.errno or 0) > 0:
                reason = os.strerror(cause.errno or 0)
            else:
                reason = cause.strerror or str(cause)
            return DatabaseProblem(
                f"DATABASE_URL: cannot reach PostgreSQL at {address} ({reason}{during}):"
                " is it running, and is the address right?",
                True,
                reason,
            )
    return None


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (SQLAlchemy's `.orig`, chained exceptions), outermost first."""
    found: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending:
        cause = pending.pop(0)
        if cause is None or any(cause is seen for seen in found):
            continue
        found.append(cause)
        pending += [getattr(cause, "orig", None), cause.__cause__, cause.__context__]
    return found


async def reach_database(url: str, **options: object) -> Database:
    """The database, connected and answering; waits up to DATABASE_WAIT_SECONDS for one that
    does not answer yet (saying so in the log), then refuses with the reason."""
    started = time.monotonic()
    deadline = started + DATABASE_WAIT_SECONDS
    waiting = False
    while True:
        db = connect_database(url, **options)
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.1)):
                await db.connect()
                await db.fetch_val("SELECT 1")
            return db
        except Exception as exc:
            await _close_quietly(db)
            problem = describe_database_error(exc, url)
            if problem is None:
                raise
            if not problem.transient or time.monotonic() + RETRY_SECONDS >= deadline:
                waited = round(time.monotonic() - started) if waiting else 0
                refuse((describe_database_error(exc, url, waited) or problem).message)
            if not waiting:
                waiting = True
                logger.info(
                    "waiting up to %g s for the database at %s (%s)",
                    DATABASE_WAIT_SECONDS,
                    database_place(url),
                    problem.reason,
                )
            await asyncio.sleep(RETRY_SECONDS)


async def _close_quietly(db: Database) -> None:
    try:
        await db.disconnect()
    except Exception:  # noqa: S110 (it never connected; nothing to close)
        pass


def schema_problem(revision: str | None, url: str) -> str | None:
    """What is wrong with a database at schema `revision` for this hub, or None."""
    place = database_place(url)
    head = migrations.head_revision()
    if revision is None:
        return f"the database at {place} has no hub schema: {MIGRATE_HINT}"
    if revision == head:
        return None
    if "," in revision:
        return (
            f"the database at {place} records several schema versions ({revision}) in its"
            " table alembic_version: keep only the row of the one it is at"
        )
    if migrations.knows_revision(revision):
        return (
            f"the database at {place} is at schema {migrations.revision_name(revision)},"
            f" this hub needs {migrations.revision_name(head)}: {MIGRATE_HINT}"
        )
    return (
        f"the database at {place} is at schema {revision}, which this hub does not know"
        " (a newer version of the hub migrated it): run that version"
    )


async def open_database(url: str, **options: object) -> Database:
    """The connected database of an operator command: it must exist and carry the newest
    schema (a command never creates a database, nor migrates one)."""
    require_sqlite_file(url, create=False)
    db = await reach_database(url, **options)
    try:
        problem = schema_problem(await migrations.schema_revision(db), url)
    except BaseException:
        await _close_quietly(db)
        raise
    if problem is not None:
        await _close_quietly(db)
        refuse(problem)
    return db


def check_database(settings: Settings) -> None:
    """`serve` in production: the database must answer and be at the newest schema (it is
    never migrated by the serving process: run `notification-hub migrate` on release)."""

    async def check() -> None:
        db = await open_database(settings.database_url)
        await db.disconnect()

    asyncio.run(check())


def migrate_database(url: str) -> list[str]:
    """Bring the database to the newest schema, creating a SQLite file if need be; the
    revisions applied. Refuses in one line when the database cannot be reached."""
    require_sqlite_file(url, create=True)

    async def reachable() -> None:
        await (await reach_database(url)).disconnect()

    asyncio.run(reachable())
    try:
        return migrations.migrate(url)
    except Exception as exc:
        described = describe_database_error(exc, url)
        if described is not None:
            refuse(described.message)
        if "Can't locate revision" in str(exc):  # the database is ahead of this hub
            refuse(
                f"the database at {database_place(url)} is at a schema this hub does not know"
                " (a newer version of the hub migrated it): run that version"
            )
        raise


def check_secrets(settings: Settings) -> None:
    """The signing keys (HUB_JWT_PRIVATE_KEYS, or the development key file if there is one
    already) load, and SMTP_URL parses: each would otherwise fail the app's start-up."""
    from auth.mail import make_mailer
    from auth.tokens import load_signing_keys

    pem, setting = settings.jwt_private_keys_pem, "HUB_JWT_PRIVATE_KEYS"
    if "HUB_JWT_PRIVATE_KEYS_FILE" in os.environ:
        setting = f"HUB_JWT_PRIVATE_KEYS_FILE ({os.environ['HUB_JWT_PRIVATE_KEYS_FILE']})"
    dev_key = Path(settings.dev_key_file)
    if pem is None and not dev_key.parent.is_dir():
        refuse(
            f"HUB_DEV_KEY_FILE: the directory of {dev_key.resolve()} does not exist (in"
            " production, set HUB_JWT_PRIVATE_KEYS instead)"
        )
    if pem is None and dev_key.exists() and not dev_key.is_file():
        refuse(
            f"HUB_DEV_KEY_FILE: {dev_key.resolve()} is not a file (a directory?): name the"
            " file the development key is kept in"
        )
    if pem is None and dev_key.is_file():
        pem = dev_key.read_text(encoding="ascii", errors="replace")
        setting = f"the development key file {dev_key.resolve()} (HUB_DEV_KEY_FILE)"
    if pem is not None:
        try:
            load_signing_keys(pem)
        except Exception as exc:  # ValueError, TypeError (encrypted), UnsupportedAlgorithm
            # The library's words, without its pointer to a FAQ; they never quote the key.
            reason = str(exc).split(". See ")[0]
            refuse(
                f"{setting} is not a usable EC P-256 private key in PEM ({reason}); generate"
                " one with `notification-hub keys generate-jwt`"
            )
    if settings.smtp_url:
        try:
            make_mailer(settings.smtp_url, development=not settings.production)
        except ValueError:
            refuse("SMTP_URL must look like smtp://user:password@host:587?starttls=true")
