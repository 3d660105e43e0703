"""Signing in and out of the console, and accepting an invitation.

The sign-in answers an unknown email, a wrong password and a disabled account alike, after
the same argon2 verification (a dummy hash when there is no account), and counts attempts
per client address and per email with the public API's login limits. Before there is a
session the form is protected by a token in a short-lived cookie that it must echo (a
foreign page cannot read it), plus the Origin check.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import Response

from auth.credential_secrets import hash_secret, secrets_equal
from auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from console import accounts
from console.audit import record
from console.guard import (
    CSRF_FIELD,
    HOME,
    actor,
    check_csrf,
    check_origin,
    end_console_session,
    signed_in,
    start_console_session,
)
from console.services import console_services
from console.web import Refused, page, read_form, redirect, render
from infra.checks import Invalid, check_email

SIGN_IN_COOKIE = "hub_console_sign_in"
SIGN_IN_COOKIE_SECONDS = 3600
INVALID = "Wrong email or password."


@page
async def home(request: Request) -> Response:
    return redirect(HOME)


def _sign_in_token(request: Request) -> str:
    """The pre-session form token: the one the browser holds, or a new one."""
    token = request.cookies.get(SIGN_IN_COOKIE)
    return token if token and len(token) <= 100 else secrets.token_urlsafe(32)


def _with_sign_in_token(request: Request, response: Response, token: str) -> Response:
    response.set_cookie(
        SIGN_IN_COOKIE,
        token,
        max_age=SIGN_IN_COOKIE_SECONDS,
        path="/console/",
        secure=console_services(request).settings.production,
        httponly=True,
        samesite="strict",
    )
    return response


def _check_sign_in_token(request: Request, form: dict[str, str]) -> None:
    check_origin(request)
    expected = request.cookies.get(SIGN_IN_COOKIE) or ""
    if not expected or not secrets_equal(form.get(CSRF_FIELD, ""), expected):
        raise Refused(403, "The form has expired or did not come from this console. Reload it.")


def _sign_in_form(request: Request, error: str | None = None, status: int = 200) -> Response:
    token = _sign_in_token(request)
    console = console_services(request).settings.console
    context = {
        "csrf_token": token,
        "error": error,
        "oidc_name": console.oidc_name if console.oidc_enabled else None,
    }
    return _with_sign_in_token(request, render(request, "sign_in.html", context, status), token)


@page
async def sign_in_form(request: Request) -> Response:
    # Shown even to a signed-in browser: signing in again (as someone else) is allowed, and
    # ends the session the browser held.
    return _sign_in_form(request)


@page
async def sign_in(request: Request) -> Response:
    form = await read_form(request)
    _check_sign_in_token(request, form)
    services = console_services(request)
    limits = services.settings.rate_limits
    who = actor(request)
    await services.limiter.hit(limits.login_ip, "console-login", who.ip)
    password = form.get("password", "")[:PASSWORD_MAX]
    try:
        email = check_email(form.get("email", ""))
    except Invalid:
        email = None
    # Counted by the address typed, whether or not it is an account: the budget of an
    # address says nothing about whether it exists.
    account_key = hash_secret(email or form.get("email", "")[:320].lower())
    await services.limiter.hit(limits.login_account, "console-account", account_key)
    account = await accounts.get_account_by_email(services.db, email) if email else None
    stored = account.password_hash if account is not None else None
    matches = await services.hasher.verify(password, stored)
    if not matches or account is None or not account.active:
        return _sign_in_form(request, INVALID, 401)
    return await start_console_session(request, account)


@page
async def sign_out(request: Request) -> Response:
    session = await signed_in(request)
    check_csrf(request, session, await read_form(request))
    services = console_services(request)
    response = await end_console_session(request)
    await record(
        services.db,
        actor(request, session.account),
        "console.sign_out",
        target=session.account.email,
    )
    return response


# -- invitations ------------------------------------------------------------------------


async def _invitation(request: Request) -> accounts.Invitation:
    token = request.path_params["token"]
    found = None
    if len(token) <= 100:
        found = await accounts.find_invitation(console_services(request).db, token)
    if found is None:
        raise Refused(404, "This invitation is unknown, used or expired.")
    return found


@page
async def invitation_form(request: Request) -> Response:
    invitation = await _invitation(request)
    existing = await accounts.get_account_by_email(console_services(request).db, invitation.email)
    return _accept_form(request, invitation, existing is not None)


def _accept_form(
    request: Request,
    invitation: accounts.Invitation,
    has_account: bool,
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = _sign_in_token(request)
    context = {
        "invitation": invitation,
        "has_account": has_account,
        "csrf_token": token,
        "error": error,
        "password_min": PASSWORD_MIN,
    }
    return _with_sign_in_token(request, render(request, "invitation.html", context, status), token)


@page
async def accept_invitation(request: Request) -> Response:
    """The invitee proves the address by holding the mailed link: a new account sets its
    password here; an existing one signs in with its own password to join."""
    form = await read_form(request)
    _check_sign_in_token(request, form)
    invitation = await _invitation(request)
    services = console_services(request)
    db = services.db
    password = form.get("password", "")
    account = await accounts.get_account_by_email(db, invitation.email)
    if account is None:
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            error = f"Choose a password of {PASSWORD_MIN} to {PASSWORD_MAX} characters."
            return _accept_form(request, invitation, False, error, 422)
        if password != form.get("password_confirmation"):
            return _accept_form(request, invitation, False, "The passwords differ.", 422)
        password_hash = await services.hasher.hash(password)
        try:
            account = await accounts.create_account(
                db, invitation.email, password_hash=password_hash
            )
        except ValueError:
            return _accept_form(request, invitation, True, "Sign in with your password.", 409)
    else:
        limits = services.settings.rate_limits
        await services.limiter.hit(limits.login_ip, "console-login", actor(request).ip)
        await services.limiter.hit(
            limits.login_account,
            "console-account",
            hash_secret(invitation.email),
        )
        if not account.active or not await services.hasher.verify(
            password[:PASSWORD_MAX], account.password_hash
        ):
            return _accept_form(request, invitation, True, INVALID, 401)
    if not await accounts.accept_invitation(db, invitation, account.id):
        raise Refused(404, "This invitation is unknown, used or expired.")
    await record(
        db,
        actor(request, account),
        "member.join",
        product_id=invitation.product_id,
        target=account.email,
        detail={"role": invitation.role, "invitation_id": invitation.id},
    )
    return await start_console_session(request, account, how="invitation")
