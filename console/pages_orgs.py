"""A product environment's organizations in the console: the list (members, plan and
subscription status), and one organization's workspace tokens, OAuth applications and
installed extensions (prefix or client id, scopes, owner, last use; never a secret), each
revoked or uninstalled by owners and admins through the auth floor's own functions, so the
credential is refused from the next request on.

An organization of another product, or of the other environment, is a 404 page.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from auth.org_admin import CREDENTIAL_KINDS, OrgSummary
from auth.services import auth_services
from console.guard import ProductAccess, audit, require, require_form
from console.pages_products import product_context
from console.pages_users import PAGE_SIZE, env_switch, page_cursor, page_env, path_id
from console.web import Refused, page, redirect, render


@page
async def organizations_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "users.view")
    env = page_env(request)
    after = page_cursor(request)
    found = await auth_services(request).org_admin.organizations(
        access.product, env, after=after, limit=PAGE_SIZE + 1
    )
    next_url = None
    if len(found) > PAGE_SIZE:
        found = found[:PAGE_SIZE]
        next_url = f"{request.url.path}?{urlencode({'env': env, 'after': found[-1].id})}"
    context = product_context(
        access, env=env, switch=env_switch(request, env), orgs=found, next_url=next_url
    )
    return render(request, "organizations.html", context)


async def _organization(request: Request, access: ProductAccess, env: str) -> OrgSummary:
    org_id = path_id(request, "org_id", "organization")
    org = await auth_services(request).org_admin.organization(access.product, env, org_id)
    if org is None:
        raise Refused(404, "No such organization in this product environment.")
    return org


@page
async def organization_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "users.view")
    env = page_env(request)
    org = await _organization(request, access, env)
    credentials = await auth_services(request).org_admin.credentials(org.id)
    notice = "Revoked: it is refused from now on." if "revoked" in request.query_params else None
    context = product_context(
        access,
        env=env,
        switch=env_switch(request, env),
        org=org,
        credentials=credentials,
        revoke=access.may("org_credentials.revoke"),
        notice=notice,
    )
    return render(request, "organization.html", context)


@page
async def revoke_credential(request: Request) -> Response:
    access, _ = await require_form(request, "org_credentials.revoke")
    env = page_env(request)
    org = await _organization(request, access, env)
    kind = request.path_params["kind"]
    if kind not in CREDENTIAL_KINDS:
        raise Refused(404, "No such credential.")
    credential_id = path_id(request, "credential_id", "credential")
    if not await auth_services(request).org_admin.revoke(org.id, kind, credential_id):
        raise Refused(404, "No such credential (or it was revoked already).")
    await audit(
        request,
        access,
        "org.extension_uninstall" if kind == "extension" else f"org.{kind}_revoke",
        target=org.name,
        detail={"organization_id": org.id, "env": env, "kind": kind, "id": credential_id},
    )
    path = f"/console/products/{access.product.slug}/organizations/{org.id}"
    return redirect(f"{path}?{urlencode({'env': env, 'revoked': kind})}")
