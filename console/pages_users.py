"""A product environment's users in the console: search them by email or external id, see one
with their organizations and live sessions (never a token), and revoke one session or all of
them (owners and admins).

Only users of the product environment are ever found or shown (members of its
organizations); an id of anyone else is a 404 page. Revoking ends the sessions in this
product environment only, refuses their refresh tokens and closes their open sockets in every
hub process at once (the auth floor's `UserAdmin` announces them).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from auth.services import auth_services
from auth.tables import ENVIRONMENTS
from auth.user_admin import EMAIL_MAX, UserDetail
from console.guard import ProductAccess, audit, require, require_form
from console.pages_products import product_context
from console.web import Refused, page, redirect, render

PAGE_SIZE = 50
SESSION_ID_MAX = 32


def page_env(request: Request) -> str:
    """The environment a page shows (`?env=live|test`, live by default); 400 otherwise."""
    env = request.query_params.get("env", "live")
    if env not in ENVIRONMENTS:
        raise Refused(400, "The environment is live or test.")
    return env


def page_cursor(request: Request) -> int | None:
    """The `after` cursor of a paginated list (the last id of the page before); 400 if odd."""
    raw = request.query_params.get("after")
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise Refused(400, "The page cursor is not valid.")
    return int(raw)


def path_id(request: Request, name: str, what: str) -> int:
    """A numeric id of the path; a 404 page for anything else."""
    raw = request.path_params[name]
    if raw.isascii() and raw.isdigit() and len(raw) < 10:
        return int(raw)
    raise Refused(404, f"No such {what}.")


def env_switch(request: Request, env: str, **params: str) -> dict[str, str]:
    """The links of the live/test switch: the same page in each environment."""
    return {e: f"{request.url.path}?{urlencode({**params, 'env': e})}" for e in ENVIRONMENTS}


@page
async def users_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "users.view")
    env = page_env(request)
    query = request.query_params.get("q", "")
    if len(query) > EMAIL_MAX or "\x00" in query:
        raise Refused(400, f"Search for at most {EMAIL_MAX} characters.")
    after = page_cursor(request)
    found = await auth_services(request).user_admin.search(
        access.product, env, query, after=after, limit=PAGE_SIZE + 1
    )
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    next_url = None
    if more:
        params = {"env": env, "q": query, "after": str(found[-1].id)}
        next_url = f"{request.url.path}?{urlencode(params)}"
    context = product_context(
        access,
        env=env,
        switch=env_switch(request, env, q=query),
        query=query,
        users=found,
        next_url=next_url,
    )
    return render(request, "users.html", context)


async def _user(request: Request, access: ProductAccess, env: str) -> UserDetail:
    user_id = path_id(request, "user_id", "user")
    detail = await auth_services(request).user_admin.user(access.product, env, user_id)
    if detail is None:
        raise Refused(404, "No such user in this product environment.")
    return detail


def _user_context(
    request: Request, access: ProductAccess, env: str, detail: UserDetail, **extra: Any
) -> dict[str, Any]:
    names = {o.id: o.name for o in detail.organizations}
    return product_context(
        access,
        env=env,
        switch=env_switch(request, env),
        detail=detail,
        org_names=names,
        revoke=access.may("users.revoke_sessions"),
        **extra,
    )


@page
async def user_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "users.view")
    env = page_env(request)
    detail = await _user(request, access, env)
    notice = None
    if request.query_params.get("revoked") is not None:
        notice = "Sessions revoked: their refresh tokens are refused and open sockets closed."
    context = _user_context(request, access, env, detail, notice=notice)
    return render(request, "user.html", context)


async def _revoke(request: Request, session_id: str | None) -> Response:
    access, _ = await require_form(request, "users.revoke_sessions")
    env = page_env(request)
    detail = await _user(request, access, env)
    if session_id is not None and (
        len(session_id) > SESSION_ID_MAX or session_id not in {s.id for s in detail.sessions}
    ):
        raise Refused(404, "No such live session of this user.")
    revoked = await auth_services(request).user_admin.revoke_sessions(
        access.product, env, detail.user.id, session_id
    )
    await audit(
        request,
        access,
        "user.sessions_revoke" if session_id is None else "user.session_revoke",
        target=detail.user.email or f"user {detail.user.id}",
        # A session id names a row, not a secret (tokens carry their own jti).
        detail={"user_id": detail.user.id, "env": env, "sessions": revoked},
    )
    path = f"/console/products/{access.product.slug}/users/{detail.user.id}"
    return redirect(f"{path}?{urlencode({'env': env, 'revoked': len(revoked)})}")


@page
async def revoke_session(request: Request) -> Response:
    return await _revoke(request, request.path_params["session_id"])


@page
async def revoke_all_sessions(request: Request) -> Response:
    return await _revoke(request, None)
