"""Helpers for the console's tests: accounts made the operator's way, sign-in over HTTP with
the form's CSRF token, and forms posted as a browser posts them."""

from __future__ import annotations

import re
import uuid

import httpx

from tests.cli_runner import run_cli
from tests.support import HubServer

CONSOLE_PASSWORD = "Console-Pass-123"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_email(tag: str = "op") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}@example.com"


def csrf_of(html: str) -> str:
    match = _CSRF.search(html)
    assert match, html
    return match.group(1)


def create_admin(hub: HubServer, email: str, password: str = CONSOLE_PASSWORD) -> None:
    result = run_cli(
        ["console", "create-admin", "--email", email, "--password-stdin"],
        cwd=hub.workdir,
        env=hub.env(),
        input=password + "\n",
    )
    assert result.returncode == 0, result.stderr


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = CONSOLE_PASSWORD
) -> httpx.Response:
    form = await client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    return await client.post(
        "/console/sign-in",
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
    )


async def sign_in_over_plain_http(
    client: httpx.AsyncClient, email: str, password: str = CONSOLE_PASSWORD
) -> tuple[httpx.Response, httpx.Response]:
    """Sign in to a production hub's console, whose cookies are Secure, over the tests' plain
    http: the sign-in form's cookie is sent by hand. The form page and the sign-in answer."""
    form = await client.get("/console/sign-in")
    assert form.status_code == 200, form.text
    signed = await client.post(
        "/console/sign-in",
        headers={"Cookie": form.headers["set-cookie"].split(";")[0]},
        data={"csrf_token": csrf_of(form.text), "email": email, "password": password},
    )
    return form, signed


async def page_csrf(client: httpx.AsyncClient, path: str = "/console/products") -> str:
    """The session's CSRF token, read from a page as a browser would."""
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)


async def post_form(
    client: httpx.AsyncClient, path: str, fields: dict[str, str] | None = None, **kwargs: object
) -> httpx.Response:
    """POST a console form with the session's CSRF token (read from the products page)."""
    token = await page_csrf(client)
    return await client.post(path, data={"csrf_token": token, **(fields or {})}, **kwargs)


_INVITATION_LINK = re.compile(r'<code id="invitation-link">([^<]+)</code>')


async def create_console_product(client: httpx.AsyncClient, slug: str, **fields: str) -> None:
    """Create a product through the console as its admin (the admin becomes its owner)."""
    values = {"slug": slug, "name": slug.title(), "identity_pool": "", "origins": ""}
    created = await post_form(client, "/console/products", {**values, **fields})
    assert created.status_code == 303, created.text


async def invite(client: httpx.AsyncClient, slug: str, email: str, role: str) -> str:
    """Invite `email` with `role`; the invitation link the page shows once."""
    answer = await post_form(
        client, f"/console/products/{slug}/members/invite", {"email": email, "role": role}
    )
    assert answer.status_code == 200, answer.text
    match = _INVITATION_LINK.search(answer.text)
    assert match, answer.text
    return match.group(1)


async def accept(
    client: httpx.AsyncClient, link: str, password: str = CONSOLE_PASSWORD
) -> httpx.Response:
    """Open the invitation link and set a password (a new account) or give it (an existing
    one); the answer signs the client in."""
    form = await client.get(link)
    assert form.status_code == 200, form.text
    fields = {"csrf_token": csrf_of(form.text), "password": password}
    if "password_confirmation" in form.text:
        fields["password_confirmation"] = password
    return await client.post(link, data=fields)
