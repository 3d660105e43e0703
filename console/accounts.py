"""Operator accounts and what they may reach: who they are, their role per product, the
invitations that make new members, and the OpenID Connect link of an account.

Plain functions over the console's tables; the pages decide who may call them (`roles.py`)
and record what they did (`audit.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from databases import Database

from auth.credential_secrets import hash_secret, new_secret
from console.tables import console_accounts, console_invitations, console_members
from infra.db import as_utc, is_unique_violation, utcnow

INVITATION_TTL = timedelta(days=7)


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    password_hash: str | None
    is_admin: bool
    oidc_issuer: str | None
    oidc_subject: str | None
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True)
class Member:
    account_id: int
    email: str
    role: str


@dataclass(frozen=True)
class Invitation:
    id: int
    product_id: int
    email: str
    role: str
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None

    @property
    def pending(self) -> bool:
        return self.accepted_at is None and self.expires_at > utcnow()


def _times(row: object, fields: dict) -> dict:
    m = row._mapping  # type: ignore[attr-defined]
    return {k: as_utc(m[k]) if isinstance(m[k], datetime) else m[k] for k in fields}


def _account(row: object) -> Account:
    return Account(**_times(row, Account.__dataclass_fields__))


def _invitation(row: object) -> Invitation:
    return Invitation(**_times(row, Invitation.__dataclass_fields__))


# -- accounts ---------------------------------------------------------------------------


async def create_account(
    db: Database, email: str, *, password_hash: str | None, is_admin: bool = False
) -> Account:
    """A new account; ValueError when the email has one already."""
    try:
        account_id = await db.execute(
            console_accounts.insert().values(
                email=email, password_hash=password_hash, is_admin=is_admin, created_at=utcnow()
            )
        )
    except Exception as exc:
        if is_unique_violation(exc):
            raise ValueError(f"a console account {email!r} exists already") from None
        raise
    account = await get_account(db, account_id)
    assert account is not None
    return account


async def get_account(db: Database, account_id: int) -> Account | None:
    row = await db.fetch_one(console_accounts.select().where(console_accounts.c.id == account_id))
    return _account(row) if row else None


async def get_account_by_email(db: Database, email: str) -> Account | None:
    row = await db.fetch_one(console_accounts.select().where(console_accounts.c.email == email))
    return _account(row) if row else None


async def list_admins(db: Database) -> list[Account]:
    query = console_accounts.select().where(console_accounts.c.is_admin.is_(True))
    return [_account(r) for r in await db.fetch_all(query.order_by(console_accounts.c.id))]


async def set_password(db: Database, account_id: int, password_hash: str) -> None:
    await db.execute(
        console_accounts.update()
        .where(console_accounts.c.id == account_id)
        .values(password_hash=password_hash)
    )


async def find_or_link_oidc_account(
    db: Database, issuer: str, subject: str, email: str | None, email_verified: bool
) -> Account | None:
    """The account a verified OpenID Connect identity signs in as: the one linked to
    (issuer, subject); else, when the provider vouches for the email, the account with that
    email (linked now, unless it is linked to another identity of that issuer) or a new one
    for a pending invitation to that email. None: nobody this console knows."""
    row = await db.fetch_one(
        console_accounts.select().where(
            sa.and_(
                console_accounts.c.oidc_issuer == issuer,
                console_accounts.c.oidc_subject == subject,
            )
        )
    )
    if row is not None:
        return _account(row)
    if not email or not email_verified:
        return None
    email = email.strip().lower()
    account = await get_account_by_email(db, email)
    if account is None:
        invitations = await pending_invitations(db, email)
        if not invitations:
            return None
        try:
            account = await create_account(db, email, password_hash=None)
        except ValueError:  # made a moment ago by a concurrent sign-in
            account = await get_account_by_email(db, email)
            assert account is not None
        for invitation in invitations:  # the provider proved the mailbox the link went to
            await accept_invitation(db, invitation, account.id)
    if account.oidc_subject is not None and account.oidc_issuer == issuer:
        return None  # the email's account belongs to another identity of this provider
    await db.execute(
        console_accounts.update()
        .where(console_accounts.c.id == account.id)
        .values(oidc_issuer=issuer, oidc_subject=subject)
    )
    return await get_account(db, account.id)


# -- members ----------------------------------------------------------------------------


async def role_of(db: Database, product_id: int, account_id: int) -> str | None:
    return await db.fetch_val(
        sa.select(console_members.c.role).where(
            (console_members.c.product_id == product_id)
            & (console_members.c.account_id == account_id)
        )
    )


async def member_product_ids(db: Database, account_id: int) -> dict[int, str]:
    rows = await db.fetch_all(
        sa.select(console_members.c.product_id, console_members.c.role).where(
            console_members.c.account_id == account_id
        )
    )
    return {r._mapping["product_id"]: r._mapping["role"] for r in rows}


async def add_member(db: Database, product_id: int, account_id: int, role: str) -> None:
    """Make the account a member with `role` (its role changes if it is one already)."""
    if await role_of(db, product_id, account_id) is not None:
        await set_role(db, product_id, account_id, role)
        return
    await db.execute(
        console_members.insert().values(
            product_id=product_id, account_id=account_id, role=role, created_at=utcnow()
        )
    )


async def set_role(db: Database, product_id: int, account_id: int, role: str) -> bool:
    changed = await db.fetch_one(
        console_members.update()
        .where(
            (console_members.c.product_id == product_id)
            & (console_members.c.account_id == account_id)
        )
        .values(role=role)
        .returning(console_members.c.id)
    )
    return changed is not None


async def remove_member(db: Database, product_id: int, account_id: int) -> None:
    await db.execute(
        console_members.delete().where(
            (console_members.c.product_id == product_id)
            & (console_members.c.account_id == account_id)
        )
    )


async def members(db: Database, product_id: int) -> list[Member]:
    rows = await db.fetch_all(
        sa.select(console_members.c.account_id, console_accounts.c.email, console_members.c.role)
        .join(console_accounts, console_accounts.c.id == console_members.c.account_id)
        .where(console_members.c.product_id == product_id)
        .order_by(console_accounts.c.email)
    )
    return [Member(**dict(r._mapping)) for r in rows]


# -- invitations ------------------------------------------------------------------------


async def invite(
    db: Database, product_id: int, email: str, role: str, invited_by: int
) -> tuple[Invitation, str]:
    """A new invitation and its token (shown once; stored as its digest)."""
    token = new_secret("inv_")
    now = utcnow()
    invitation_id = await db.execute(
        console_invitations.insert().values(
            product_id=product_id,
            email=email,
            role=role,
            token_hash=hash_secret(token),
            invited_by=invited_by,
            created_at=now,
            expires_at=now + INVITATION_TTL,
        )
    )
    row = await db.fetch_one(
        console_invitations.select().where(console_invitations.c.id == invitation_id)
    )
    return _invitation(row), token


async def find_invitation(db: Database, token: str) -> Invitation | None:
    """The pending invitation `token` opens; None if unknown, used or expired."""
    row = await db.fetch_one(
        console_invitations.select().where(console_invitations.c.token_hash == hash_secret(token))
    )
    invitation = _invitation(row) if row else None
    return invitation if invitation is not None and invitation.pending else None


async def accept_invitation(db: Database, invitation: Invitation, account_id: int) -> bool:
    """Mark it used and make the account a member (unless it is one); False if someone used
    it meanwhile."""
    async with db.transaction():
        used = await db.fetch_one(
            console_invitations.update()
            .where(
                (console_invitations.c.id == invitation.id)
                & console_invitations.c.accepted_at.is_(None)
            )
            .values(accepted_at=utcnow())
            .returning(console_invitations.c.id)
        )
        if used is None:
            return False
        # A member already keeps the role it has: an invitation never changes a role (an
        # admin's invitation must not demote an owner, nor leave a product without one).
        if await role_of(db, invitation.product_id, account_id) is None:
            await add_member(db, invitation.product_id, account_id, invitation.role)
    return True


async def pending_invitations(
    db: Database, email: str | None = None, product_id: int | None = None
) -> list[Invitation]:
    query = console_invitations.select().where(
        console_invitations.c.accepted_at.is_(None) & (console_invitations.c.expires_at > utcnow())
    )
    if email is not None:
        query = query.where(console_invitations.c.email == email)
    if product_id is not None:
        query = query.where(console_invitations.c.product_id == product_id)
    rows = await db.fetch_all(query.order_by(console_invitations.c.id))
    return [_invitation(r) for r in rows]


async def withdraw_invitation(db: Database, product_id: int, invitation_id: int) -> bool:
    deleted = await db.fetch_one(
        console_invitations.delete()
        .where(
            (console_invitations.c.id == invitation_id)
            & (console_invitations.c.product_id == product_id)
            & console_invitations.c.accepted_at.is_(None)
        )
        .returning(console_invitations.c.id)
    )
    return deleted is not None
