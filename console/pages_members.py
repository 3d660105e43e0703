"""A product's members and invitations, and its audit log page.

Anyone with a role sees who else has one; owners and admins invite (the link is shown once
and mailed), change roles and remove members, except that only an owner grants, changes or
removes the owner role, and nobody removes or demotes the product's last owner.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from auth.mail import OutgoingMail
from console import accounts, roles
from console.audit import entries
from console.guard import ProductAccess, audit, require, require_form, signed_in
from console.pages_products import product_context, session_context
from console.services import ConsoleServices, console_services
from console.web import Refused, page, redirect, render
from infra.checks import Invalid, check_email

logger = logging.getLogger("console.members")

AUDIT_PAGE = 50
INVITATION_MAIL_SECONDS = 10.0


def _grantable(access: ProductAccess) -> list[str]:
    return [r for r in roles.ROLES if roles.may_manage_role(access.role, r)]


async def _members_page(
    request: Request,
    access: ProductAccess,
    *,
    notice: str | None = None,
    error: str | None = None,
    invitation_link: str | None = None,
) -> Response:
    db = console_services(request).db
    manage = access.may("members.manage")
    invitations = await accounts.pending_invitations(db, product_id=access.product.id)
    context = product_context(
        access,
        members=await accounts.members(db, access.product.id),
        invitations=invitations if manage else [],
        manage=manage,
        grantable=_grantable(access) if manage else [],
        notice=notice,
        error=error,
        invitation_link=invitation_link,
    )
    return render(request, "members.html", context, 422 if error else 200)


@page
async def members_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.view")
    return await _members_page(request, access)


@page
async def invite(request: Request) -> Response:
    access, form = await require_form(request, "members.manage")
    services = console_services(request)
    role = form.get("role", "")
    try:
        email = check_email(form.get("email", ""))
    except Invalid:
        return await _members_page(request, access, error="Not an email address.")
    if role not in roles.ROLES:
        return await _members_page(request, access, error="Not a role.")
    if not roles.may_manage_role(access.role, role):
        raise Refused(403, "Your role may not grant this role.")
    assert email is not None
    invitation, token = await accounts.invite(
        services.db, access.product.id, email, role, access.account.id
    )
    link = f"{services.settings.public_url}/console/invitations/{token}"
    mailed = await _mail_invitation(
        services,
        OutgoingMail(
            to=email,
            from_name=f"{access.product.name} console",
            from_address=services.settings.mail_from,
            subject=f"You are invited to {access.product.name}'s console",
            body=f"{access.account.email} invites you to the console of {access.product.name}"
            f" as {role}.\n\nAccept within 7 days: {link}\n",
            kind="console_invitation",
        ),
        access.product.slug,
    )
    await audit(
        request,
        access,
        "member.invite",
        target=email,
        detail={"role": role, "invitation_id": invitation.id},
    )
    notice = f"Invited {email} as {role}."
    if not mailed:
        notice += " The mail could not be sent: give them the link below yourself."
    return await _members_page(request, access, notice=notice, invitation_link=link)


async def _mail_invitation(services: ConsoleServices, mail: OutgoingMail, slug: str) -> bool:
    """Send the invitation; False if the mail server fails or is slow. The invitation stands
    either way: its link is on the answer page, shown once, for the inviter to pass on."""
    try:
        async with asyncio.timeout(INVITATION_MAIL_SECONDS):
            await services.mailer.send(mail)
    except Exception as exc:  # any mail failure: the page must still show the link
        logger.warning(
            "console invitation mail of product %s not sent: %s", slug, type(exc).__name__
        )
        return False
    return True


async def _member_role(request: Request, access: ProductAccess) -> tuple[int, str]:
    raw = request.path_params["account_id"]
    current = None
    if raw.isascii() and raw.isdigit() and len(raw) < 10:
        current = await accounts.role_of(console_services(request).db, access.product.id, int(raw))
    if current is None:
        raise Refused(404, "No such member.")
    if not roles.may_manage_role(access.role, current):
        raise Refused(403, "Your role may not change this member.")
    return int(raw), current


async def _last_owner(request: Request, access: ProductAccess, current: str) -> bool:
    members = await accounts.members(console_services(request).db, access.product.id)
    return current == "owner" and sum(m.role == "owner" for m in members) <= 1


@page
async def change_role(request: Request) -> Response:
    access, form = await require_form(request, "members.manage")
    account_id, current = await _member_role(request, access)
    role = form.get("role", "")
    if not roles.may_manage_role(access.role, role):
        raise Refused(403, "Your role may not grant this role.")
    if role != current and await _last_owner(request, access, current):
        return await _members_page(request, access, error="A product keeps at least one owner.")
    db = console_services(request).db
    await accounts.set_role(db, access.product.id, account_id, role)
    await audit(
        request,
        access,
        "member.role",
        target=str(account_id),
        detail={"before": current, "after": role},
    )
    return redirect(f"/console/products/{access.product.slug}/members")


@page
async def remove_member(request: Request) -> Response:
    access, _ = await require_form(request, "members.manage")
    account_id, current = await _member_role(request, access)
    if await _last_owner(request, access, current):
        return await _members_page(request, access, error="A product keeps at least one owner.")
    db = console_services(request).db
    await accounts.remove_member(db, access.product.id, account_id)
    await audit(
        request,
        access,
        "member.remove",
        target=str(account_id),
        detail={"role": current},
    )
    return redirect(f"/console/products/{access.product.slug}/members")


@page
async def withdraw_invitation(request: Request) -> Response:
    access, _ = await require_form(request, "members.manage")
    raw = request.path_params["invitation_id"]
    db = console_services(request).db
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise Refused(404, "No such invitation.")
    if not await accounts.withdraw_invitation(db, access.product.id, int(raw)):
        # Another product's invitation, an accepted one or none: the same answer for each.
        raise Refused(404, "No such invitation.")
    await audit(
        request,
        access,
        "member.invitation_withdrawn",
        target=raw,
    )
    return redirect(f"/console/products/{access.product.slug}/members")


async def _audit_rows(request: Request, product_id: int | None) -> dict[str, Any]:
    raw = request.query_params.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None
    db = console_services(request).db
    rows = await entries(db, product_id, limit=AUDIT_PAGE + 1, before_id=before)
    next_before = rows[AUDIT_PAGE - 1].id if len(rows) > AUDIT_PAGE else None
    return {"entries": rows[:AUDIT_PAGE], "next_before": next_before}


@page
async def audit_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "audit.view")
    rows = await _audit_rows(request, access.product.id)
    return render(request, "audit.html", product_context(access, **rows))


@page
async def deployment_audit_page(request: Request) -> Response:
    """Every row, sign-ins and sign-outs included (they belong to no product): console
    admins only."""
    session = await signed_in(request)
    if not session.account.is_admin:
        raise Refused(403, "Only console admins read the whole audit log.")
    rows = await _audit_rows(request, None)
    return render(request, "audit_all.html", session_context(session, **rows))
