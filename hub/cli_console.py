"""The console's operator commands (`notification-hub console …`): the first admin account,
made from the command line because nobody can sign in to make it."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from databases import Database

from hub.cli_common import add_command, change_or_refuse, settings_or_exit, with_database
from hub.preflight import refuse


def _read_password(args: argparse.Namespace) -> str:
    from auth.passwords import PASSWORD_MAX, PASSWORD_MIN

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        try:
            password = getpass.getpass("Password: ")
            again = getpass.getpass("Password (again): ")
        except (EOFError, KeyboardInterrupt):
            refuse("no password given")
        if password != again:
            refuse("the two passwords differ")
    if len(password) < PASSWORD_MIN:
        refuse(f"the password is too short: at least {PASSWORD_MIN} characters")
    if len(password) > PASSWORD_MAX:
        refuse(f"the password is too long: at most {PASSWORD_MAX} characters")
    if "\x00" in password or not password.strip():
        refuse("the password must be printable text")
    return password


def _email(raw: str) -> str:
    from infra.checks import Invalid, check_email

    try:
        email = check_email(raw)
    except Invalid:
        refuse(f"not an email address: {raw!r}")
    assert email is not None
    return email


def cmd_console_create_admin(args: argparse.Namespace) -> None:
    from auth.passwords import PasswordHasher
    from console import accounts

    settings = settings_or_exit()
    email = _email(args.email)
    password = _read_password(args)

    async def work(db: Database) -> accounts.Account:
        if await accounts.get_account_by_email(db, email) is not None:
            refuse(f"a console account {email!r} exists already")
        hasher = PasswordHasher(
            memory_kib=settings.argon2_memory_kib,
            time_cost=settings.argon2_time_cost,
            parallelism=settings.argon2_parallelism,
            threads=1,
        )
        try:
            password_hash = await hasher.hash(password)
        finally:
            hasher.close()
        return await accounts.create_account(db, email, password_hash=password_hash, is_admin=True)

    account = change_or_refuse(settings, work)
    print(f"created console admin {account.email} (id {account.id}); sign in at")
    print(f"  {settings.public_url}/console/sign-in")


def cmd_console_list_admins(args: argparse.Namespace) -> None:
    from console import accounts

    admins = with_database(settings_or_exit(), accounts.list_admins)
    if not admins:
        print("no console admins yet: create one with `notification-hub console create-admin`")
        return
    for admin in admins:
        state = " (disabled)" if admin.disabled_at else ""
        print(f"{admin.id}  {admin.email}{state}")


def add_console_commands(commands: Any) -> None:
    console = add_command(commands, "console", help="the operator console's accounts")
    console_commands = console.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = add_command(
        console_commands,
        "create-admin",
        help="create a console admin (creates products, acts as owner on every product);"
        " the password is asked twice, or read from standard input",
    )
    create.add_argument("--email", required=True, help="the admin's email (the sign-in name)")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input instead of a prompt",
    )
    create.set_defaults(run=cmd_console_create_admin)
    listing = add_command(console_commands, "list-admins", help="list the console admins")
    listing.set_defaults(run=cmd_console_list_admins)
