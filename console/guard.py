"""Who is calling a console page: the session cookie (nothing else), the CSRF checks of a
form, and `require(request, slug, action)`, the one check every product page makes.

The cookie is read only here and only on /console/… (the API's guards read the
`Authorization` header and never look at cookies). `start_console_session` is the one way a
browser gets a session: the password sign-in and the OpenID Connect callback both end in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from auth.credential_secrets import secrets_equal
from auth.credentials import client_address
from auth.products import Product, get_product_by_slug
from console import accounts, roles
from console.accounts import Account
from console.audit import Actor, record
from console.services import console_services
from console.sessions import ConsoleSession
from console.web import Refused, SignInRequired, read_form, redirect

COOKIE = "hub_console_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
HOME = "/console/products"


@dataclass(frozen=True)
class ProductAccess:
    """What `require` found: the signed-in session, the product and the caller's role on it
    (a console admin's is owner)."""

    session: ConsoleSession
    product: Product
    role: str

    @property
    def account(self) -> Account:
        return self.session.account

    def may(self, action: str) -> bool:
        return roles.allowed(self.role, action)


def actor(request: Request, account: Account | None = None) -> Actor:
    """Who acts (for the audit log) and from where."""
    return Actor(
        account_id=account.id if account else None,
        email=account.email if account else None,
        ip=client_address(request),
        user_agent=request.headers.get("user-agent", ""),
    )


async def audit(
    request: Request,
    access: ProductAccess,
    action: str,
    *,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record `action` on the product `access` names, by its signed-in account, in the
    audit log (who, what, when, from where): every product page's changes end here."""
    await record(
        console_services(request).db,
        actor(request, access.account),
        action,
        product_id=access.product.id,
        target=target,
        detail=detail,
    )


def own_origin(request: Request) -> str:
    parts = urlsplit(console_services(request).settings.public_url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request) -> None:
    """A browser names the page a form came from; it must be one of the hub's own pages."""
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(request):
        raise Refused(403, "This form came from another site.")


_UNREAD = object()


async def current_session(request: Request) -> ConsoleSession | None:
    """The live session the cookie names (looked up once per request), or None."""
    found = getattr(request.state, "console_session", _UNREAD)
    if found is _UNREAD:
        value = request.cookies.get(COOKIE)
        found = None
        if value and len(value) <= 100:
            found = await console_services(request).sessions.look_up(value)
        request.state.console_session = found
    return found  # type: ignore[return-value]


async def signed_in(request: Request) -> ConsoleSession:
    session = await current_session(request)
    if session is None:
        raise SignInRequired
    return session


def check_csrf(request: Request, session: ConsoleSession, form: dict[str, str]) -> None:
    """A state-changing request must come from our own page: its Origin (when sent) is the
    hub's, and it carries the session's token (form field or X-CSRF-Token header)."""
    check_origin(request)
    presented = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or ""
    if not secrets_equal(presented, session.csrf_token):
        raise Refused(403, "The form has expired or did not come from this console. Reload it.")


async def require(request: Request, product_slug: str, action: str) -> ProductAccess:
    """The product and the caller's role on it when the role allows `action`: a sign-in
    redirect without a session, a 403 page otherwise (also for a product the caller is not
    a member of, or that does not exist: both look the same)."""
    session = await signed_in(request)
    services = console_services(request)
    product = await get_product_by_slug(services.db, product_slug)
    role = None
    if product is not None:
        if session.account.is_admin:
            role = "owner"
        else:
            role = await accounts.role_of(services.db, product.id, session.account.id)
    if product is None or not roles.allowed(role, action):
        raise Refused(403, "Your role on this product does not allow this.")
    assert role is not None
    return ProductAccess(session=session, product=product, role=role)


def set_session_cookie(request: Request, response: Response, value: str) -> None:
    settings = console_services(request).settings
    response.set_cookie(
        COOKIE,
        value,
        max_age=settings.console.absolute_seconds,
        path="/",
        secure=settings.production,
        httponly=True,
        samesite="lax",
    )


async def require_form(request: Request, action: str) -> tuple[ProductAccess, dict[str, str]]:
    """The start of every form handler: `require` the action on the product in the path, then
    read the POSTed form and check its CSRF token (403 page otherwise)."""
    access = await require(request, request.path_params["slug"], action)
    form = await read_form(request)
    check_csrf(request, access.session, form)
    return access, form


async def start_console_session(
    request: Request, account: Account, *, how: str = "password", next_url: str = HOME
) -> Response:
    """Sign `account` in: the session the browser presented (if any) ends, a new one starts,
    its cookie is set and the browser goes on to `next_url`. The hook for every sign-in
    method (`how` is recorded in the audit log: "password", "oidc", "invitation")."""
    services = console_services(request)
    presented = request.cookies.get(COOKIE)
    if presented and len(presented) <= 100:
        await services.sessions.revoke(presented)
    who = actor(request, account)
    value = await services.sessions.start(account, ip=who.ip, user_agent=who.user_agent)
    await record(services.db, who, "console.sign_in", target=account.email, detail={"how": how})
    response = redirect(next_url if next_url.startswith("/console/") else HOME)
    set_session_cookie(request, response, value)
    return response


async def end_console_session(request: Request) -> Response:
    """Sign out: the session row is revoked (the cookie no longer works anywhere) and the
    browser is told to forget it."""
    services = console_services(request)
    presented = request.cookies.get(COOKIE)
    if presented and len(presented) <= 100:
        await services.sessions.revoke(presented)
    response = redirect("/console/sign-in")
    response.delete_cookie(
        COOKIE, path="/", secure=services.settings.production, httponly=True, samesite="lax"
    )
    return response
