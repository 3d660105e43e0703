"""HTTP endpoints of extensions (Kiket's extension API keys), for an organization's owners and
admins, as the workspace-token endpoints are (`auth/org_routes.py`):

- `POST /api/v1/extensions`: install from a manifest (`{"extension": {"name", "scopes",
  "webhook_url"}}`); 201 with the `ext_…` key, shown once. The manifest may ask only for
  scopes the installer holds: beyond them is 403 `auth.forbidden` naming them.
- `GET /api/v1/extensions`: the installed ones, without keys, with `last_used_at`.
- `POST /api/v1/extensions/{id}/secrets`: 201 with a new key, shown once (as a product key's
  rotation answers); the old one stops at once.
- `DELETE /api/v1/extensions/{id}`: uninstall; the key stops at once.

The key itself works on the org-scoped server endpoints (`auth/org_callers.py`), never here.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth import extensions as ext
from auth.answers import EXTENSION, obj
from auth.manifests import InstallExtension
from auth.services import auth_services
from auth.transport import EXTENSION_INSTALLER, ORG_MANAGER, Installer, Manager
from infra.api import Answer, Endpoints
from infra.errors import FieldError, HubError, forbidden
from infra.http import path_id

api = Endpoints(tags=["organization"])

NO_STORE_ONCE = {"Cache-Control": "no-store"}  # an answer that holds a key shown once
MANAGER_ERRORS: dict[int, Any] = {404: "product.not_found", 429: "rate_limited"}
MISSING = "extension.not_found"


@api.route(
    "GET",
    "/api/v1/extensions",
    summary="The organization's installed extensions (no keys)",
    guard=ORG_MANAGER,
    answers={200: obj(["extensions"], extensions={"type": "array"}), **MANAGER_ERRORS},
)
async def list_extensions(request: Request, manager: Manager) -> Response:
    installed = await auth_services(request).extensions.installed(manager.org_id)
    return JSONResponse({"extensions": installed})


@api.route(
    "POST",
    "/api/v1/extensions",
    summary="Install an extension from its manifest (its key is shown once)",
    guard=EXTENSION_INSTALLER,
    body=InstallExtension,
    answers={201: EXTENSION, 409: "extension.too_many", **MANAGER_ERRORS},
)
async def install_extension(
    request: Request, installer: Installer, body: InstallExtension
) -> Response:
    manifest = body.extension
    beyond = ext.scopes_beyond(manifest.scopes, installer.holds)
    if beyond:
        named = FieldError("scope.beyond_installer", scopes=", ".join(beyond))
        raise HubError(403, "auth.forbidden", fields={"scopes": named})
    if not installer.manages:
        raise forbidden()
    extensions = auth_services(request).extensions
    if await extensions.count_installed(installer.org_id) >= ext.MAX_EXTENSIONS_PER_ORGANIZATION:
        raise HubError(409, "extension.too_many")
    answer = await extensions.install(
        org_id=installer.org_id,
        installed_by=installer.user_id,
        name=manifest.name,
        scopes=manifest.scopes,
        webhook_url=manifest.webhook_url,
    )
    return JSONResponse(answer, status_code=201, headers=NO_STORE_ONCE)


@api.route(
    "POST",
    "/api/v1/extensions/{id}/secrets",
    summary="Rotate an extension's key: the new one is shown once, the old one stops at once",
    guard=ORG_MANAGER,
    answers={201: EXTENSION, **MANAGER_ERRORS, 404: ("product.not_found", MISSING)},
)
async def rotate_extension_key(request: Request, manager: Manager) -> Response:
    extension_id = path_id(request, "id", MISSING)
    answer = await auth_services(request).extensions.rotate(manager.org_id, extension_id)
    if answer is None:
        raise HubError(404, MISSING)
    return JSONResponse(answer, status_code=201, headers=NO_STORE_ONCE)


@api.route(
    "DELETE",
    "/api/v1/extensions/{id}",
    summary="Uninstall an extension; its key stops working at once",
    guard=ORG_MANAGER,
    answers={
        204: Answer("Uninstalled"),
        **MANAGER_ERRORS,
        404: ("product.not_found", MISSING),
    },
)
async def uninstall_extension(request: Request, manager: Manager) -> Response:
    extension_id = path_id(request, "id", MISSING)
    if not await auth_services(request).extensions.uninstall(manager.org_id, extension_id):
        raise HubError(404, MISSING)
    return Response(status_code=204)


routes = api.routes
