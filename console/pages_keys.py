"""A product's keys in the console: everyone with a role sees them (prefix, scopes, last
use; never a secret); owners, admins and developers create restricted keys, rotate any key
and revoke restricted ones. A new secret is shown once, on the answer to the POST that made
it (Cache-Control: no-store, like every console page), and is stored only as its hash.

The keys change through the auth floor's `ProductAdmin`, as the server API's do: the old
key stops working at once in every hub process.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth import keys
from auth.keys import PRODUCT_SCOPES
from auth.tables import ENVIRONMENTS
from console.guard import ProductAccess, audit, require, require_form
from console.pages_products import product_context
from console.services import console_services
from console.web import Refused, page, render
from infra.errors import HubError

NAME_MAX = 200


async def _keys_page(
    request: Request,
    access: ProductAccess,
    *,
    secret: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    admin = console_services(request).product_admin
    found = [k for env in ENVIRONMENTS for k in await admin.list_keys(access.product, env)]
    context = product_context(
        access,
        keys=[k for k in found if k.active],
        manage=access.may("keys.manage"),
        scopes=PRODUCT_SCOPES,
        secret=secret,
        error=error,
    )
    return render(request, "keys.html", context, status)


@page
async def keys_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "keys.view")
    return await _keys_page(request, access)


async def _key(request: Request, access: ProductAccess) -> keys.ProductKey:
    raw = request.path_params["key_id"]
    if raw.isascii() and raw.isdigit() and len(raw) < 10:
        admin = console_services(request).product_admin
        for env in ENVIRONMENTS:
            key = await admin.key(access.product, env, int(raw))
            if key is not None and key.active:
                return key
    raise Refused(404, "No such key (or it was revoked).")


@page
async def create_key(request: Request) -> Response:
    access, form = await require_form(request, "keys.manage")
    env = form.get("env", "")
    name = form.get("name", "").strip()
    scopes = [s for s in PRODUCT_SCOPES if form.get(f"scope:{s}")]
    if env not in ENVIRONMENTS or not name or len(name) > NAME_MAX or not scopes:
        error = f"Name the key (1 to {NAME_MAX} characters), pick its environment and a scope."
        return await _keys_page(request, access, error=error, status=422)
    services = console_services(request)
    try:
        key, plaintext = await services.product_admin.create_restricted_key(
            access.product, env, scopes=scopes, name=name
        )
    except HubError:  # key.too_many
        return await _keys_page(request, access, error="Too many restricted keys.", status=409)
    await audit(
        request,
        access,
        "key.create",
        target=key.prefix,
        detail={"key_id": key.id, "env": env, "kind": key.kind, "scopes": scopes, "name": name},
    )
    secret = {"what": f"New {env} restricted key {name}", "value": plaintext}
    return await _keys_page(request, access, secret=secret, status=201)


@page
async def rotate_key(request: Request) -> Response:
    access, _ = await require_form(request, "keys.manage")
    key = await _key(request, access)
    services = console_services(request)
    try:
        new_key, plaintext = await services.product_admin.rotate_key(key)
    except LookupError:
        raise Refused(409, "The key was revoked meanwhile.") from None
    await audit(
        request,
        access,
        "key.rotate",
        target=key.prefix,
        detail={"key_id": key.id, "new_key_id": new_key.id, "env": key.env, "kind": key.kind},
    )
    secret = {"what": f"New {key.env} {key.kind} key (the old one no longer works)"}
    return await _keys_page(request, access, secret={**secret, "value": plaintext}, status=201)


@page
async def revoke_key(request: Request) -> Response:
    access, _ = await require_form(request, "keys.manage")
    key = await _key(request, access)
    if key.kind != "restricted":
        raise Refused(409, "Publishable and secret keys are rotated, not revoked.")
    services = console_services(request)
    await services.product_admin.revoke_key(key)
    await audit(
        request,
        access,
        "key.revoke",
        target=key.prefix,
        detail={"key_id": key.id, "env": key.env},
    )
    return await _keys_page(request, access)
