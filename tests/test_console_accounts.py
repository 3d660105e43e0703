"""Console accounts below the pages: the OpenID Connect link (`find_or_link_oidc_account`,
the hook the OIDC callback uses), invitations used once, sessions revoked per account, and
the HUB_CONSOLE_* settings with their bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from databases import Database

from console import accounts
from console.sessions import ConsoleSessions
from hub.migrate import migrate
from infra.db import connect_database
from infra.settings import Settings, SettingsError

ISSUER = "https://id.example.com"


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('console-accounts') / 'hub.db'}"
    migrate(url)
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = connect_database(database_url)
    await database.connect()
    try:
        yield database
    finally:
        await database.disconnect()


async def _product(db: Database, slug: str) -> int:
    from auth.products import create_product

    product, _ = await create_product(db, slug=slug, name=slug, origins=[])
    return product.id


async def test_oidc_identity_links_to_the_account_with_its_verified_email(db):
    account = await accounts.create_account(db, "linked@example.com", password_hash=None)
    unverified = await accounts.find_or_link_oidc_account(
        db, ISSUER, "sub-1", "linked@example.com", email_verified=False
    )
    assert unverified is None  # an unproven email links nothing
    linked = await accounts.find_or_link_oidc_account(
        db, ISSUER, "sub-1", "Linked@Example.com", email_verified=True
    )
    assert linked is not None and linked.id == account.id
    assert (linked.oidc_issuer, linked.oidc_subject) == (ISSUER, "sub-1")
    # Later sign-ins find it by (issuer, subject), whatever the email says now.
    again = await accounts.find_or_link_oidc_account(db, ISSUER, "sub-1", None, False)
    assert again is not None and again.id == account.id
    # Another subject of the same issuer does not take the account over.
    other = await accounts.find_or_link_oidc_account(
        db, ISSUER, "sub-2", "linked@example.com", email_verified=True
    )
    assert other is None


async def test_oidc_identity_with_a_pending_invitation_becomes_a_member(db):
    product_id = await _product(db, "oidc-invited")
    inviter = await accounts.create_account(db, "inviter@example.com", password_hash=None)
    await accounts.invite(db, product_id, "new@example.com", "developer", inviter.id)
    nobody = await accounts.find_or_link_oidc_account(
        db, ISSUER, "sub-x", "stranger@example.com", email_verified=True
    )
    assert nobody is None  # no account, no invitation: not a console user
    joined = await accounts.find_or_link_oidc_account(
        db, ISSUER, "sub-3", "new@example.com", email_verified=True
    )
    assert joined is not None and joined.password_hash is None
    assert await accounts.role_of(db, product_id, joined.id) == "developer"
    assert await accounts.pending_invitations(db, "new@example.com") == []


async def test_an_invitation_is_used_once(db):
    product_id = await _product(db, "used-once")
    inviter = await accounts.create_account(db, "owner-1@example.com", password_hash=None)
    invitation, token = await accounts.invite(db, product_id, "x@example.com", "viewer", inviter.id)
    found = await accounts.find_invitation(db, token)
    assert found is not None and found.id == invitation.id
    invitee = await accounts.create_account(db, "x@example.com", password_hash=None)
    assert await accounts.accept_invitation(db, found, invitee.id)
    assert not await accounts.accept_invitation(db, found, invitee.id)
    assert await accounts.find_invitation(db, token) is None
    assert await accounts.find_invitation(db, "inv_unknown") is None


async def test_revoking_an_account_ends_all_its_sessions(db):
    account = await accounts.create_account(db, "many@example.com", password_hash=None)
    sessions = ConsoleSessions(db, idle_seconds=600, absolute_seconds=3600)
    values = [await sessions.start(account, ip="127.0.0.1", user_agent="t") for _ in range(3)]
    assert all([await sessions.look_up(v) for v in values])
    assert await sessions.revoke_account(account.id) == 3
    assert not any([await sessions.look_up(v) for v in values])
    assert await sessions.look_up("not-a-session") is None


def test_console_settings_from_the_environment(tmp_path: Path):
    secret_file = tmp_path / "secret"
    secret_file.write_text("s3cret\n")
    settings = Settings.from_env(
        {
            "HUB_CONSOLE_IDLE_MINUTES": "5",
            "HUB_CONSOLE_SESSION_HOURS": "2",
            "HUB_CONSOLE_OIDC_ISSUER": "https://id.example.com/",
            "HUB_CONSOLE_OIDC_CLIENT_ID": "hub",
            "HUB_CONSOLE_OIDC_CLIENT_SECRET_FILE": str(secret_file),
        }
    )
    console = settings.console
    assert (console.idle_seconds, console.absolute_seconds) == (300, 7200)
    assert console.oidc_issuer == "https://id.example.com"
    assert console.oidc_client_secret == "s3cret"
    assert console.oidc_enabled and console.oidc_name == "single sign-on"
    defaults = Settings.from_env({}).console
    assert (defaults.idle_seconds, defaults.absolute_seconds) == (1800, 43200)
    assert not defaults.oidc_enabled
    for name, value in (
        ("HUB_CONSOLE_IDLE_MINUTES", "0"),
        ("HUB_CONSOLE_SESSION_HOURS", "x"),
        ("HUB_CONSOLE_OIDC_CLIENT_SECRET_FILE", str(tmp_path / "missing")),
    ):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: value})


async def test_an_invitation_never_changes_an_existing_members_role(db):
    product_id = await _product(db, "keeps-roles")
    owner = await accounts.create_account(db, "the-owner@example.com", password_hash=None)
    await accounts.add_member(db, product_id, owner.id, "owner")
    invitation, _ = await accounts.invite(db, product_id, owner.email, "viewer", owner.id)
    assert await accounts.accept_invitation(db, invitation, owner.id)
    assert await accounts.role_of(db, product_id, owner.id) == "owner"


async def test_a_shorter_session_limit_applies_to_the_sessions_already_running(db):
    # Found by an outside review: the absolute end was fixed at sign-in, so lowering
    # HUB_CONSOLE_SESSION_HOURS left longer sessions running until their old end.
    account = await accounts.create_account(db, "shortened@example.com", password_hash=None)
    before = ConsoleSessions(db, idle_seconds=600, absolute_seconds=3600)
    value = await before.start(account, ip="127.0.0.1", user_agent="t")
    after_restart = ConsoleSessions(db, idle_seconds=600, absolute_seconds=1)
    assert await after_restart.look_up(value) is not None
    await asyncio.sleep(1.2)
    assert await after_restart.look_up(value) is None
    assert await before.look_up(value) is not None  # the row itself was not ended
