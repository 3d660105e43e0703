"""HTTP endpoints of organization credentials (Kiket's workspace API tokens and OAuth 2.0
client credentials) and of what those credentials can read about their organization.

- `GET|POST /api/v1/workspace_api_tokens`, `DELETE /api/v1/workspace_api_tokens/{id}` and
  `GET|POST /api/v1/oauth_applications`, `DELETE /api/v1/oauth_applications/{id}`: for org
  owners and admins, with their access token (the org it names) or a workspace/OAuth token
  holding the `admin` scope. Bodies are wrapped as in the Kiket seed
  (`{"workspace_api_token": {…}}`, `{"oauth_application": {…}}`).
- `POST /oauth/token` (RFC 6749 section 4.4): `grant_type=client_credentials`, the client
  authenticated by HTTP Basic or by `client_id` + `client_secret` in the body; errors as RFC
  6749 section 5.2 says (`invalid_request`, `invalid_client`, `invalid_scope`,
  `unsupported_grant_type`).
- `GET /api/v1/organization/members`: `members:read`, workspace or OAuth tokens.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl, unquote

import sqlalchemy as sa
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from auth import org_credentials as oc
from auth.answers import OAUTH_APPLICATION, OAUTH_ERROR, STRING, WORKSPACE_TOKEN, obj
from auth.bodies import CreateWorkspaceToken, RegisterApplication, TokenRequest
from auth.credentials import ServerCaller, client_address
from auth.services import auth_services
from auth.tables import oauth_applications, workspace_tokens
from auth.transport import ORG_MANAGER, PUBLIC, Manager, org_key
from infra import jsonsafe
from infra.api import ERROR, Answer, Endpoints
from infra.errors import HubError
from infra.http import path_id
from infra.jsonsafe import has_forbidden_characters

api = Endpoints(tags=["organization"])

TOKEN_BODY_LIMIT = 8 * 1024


async def _room_for_one_more(request: Request, table: sa.Table, org_id: int) -> None:
    store = auth_services(request).org_credentials
    if await store.count_active(table, org_id) >= oc.MAX_PER_ORGANIZATION:
        raise HubError(409, "key.too_many")


async def _revoke(request: Request, manager: Manager, table: sa.Table, missing: str) -> Response:
    """Revoke one of the manager's organization's tokens or applications: 204, or 404."""
    row_id = path_id(request, "id", missing)
    if not await auth_services(request).org_credentials.revoke(table, manager.org_id, row_id):
        raise HubError(404, missing)
    return Response(status_code=204)


NO_STORE_ONCE = {"Cache-Control": "no-store"}  # an answer that holds a secret shown once
MANAGER_ERRORS: dict[int, Any] = {404: "product.not_found", 429: "rate_limited"}

# -- workspace API tokens ----------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/workspace_api_tokens",
    summary="The organization's live workspace tokens",
    guard=ORG_MANAGER,
    answers={
        200: obj(["workspace_api_tokens"], workspace_api_tokens={"type": "array"}),
        **MANAGER_ERRORS,
    },
)
async def list_workspace_tokens(request: Request, manager: Manager) -> Response:
    tokens = await auth_services(request).org_credentials.list_workspace_tokens(manager.org_id)
    return JSONResponse({"workspace_api_tokens": tokens})


@api.route(
    "POST",
    "/api/v1/workspace_api_tokens",
    summary="Issue a workspace token (shown once)",
    guard=ORG_MANAGER,
    body=CreateWorkspaceToken,
    answers={201: WORKSPACE_TOKEN, 409: "key.too_many", **MANAGER_ERRORS},
)
async def create_workspace_token(
    request: Request, manager: Manager, body: CreateWorkspaceToken
) -> Response:
    spec = body.workspace_api_token
    await _room_for_one_more(request, workspace_tokens, manager.org_id)
    answer = await auth_services(request).org_credentials.issue_workspace_token(
        org_id=manager.org_id,
        owner_id=manager.user_id,
        name=spec.name,
        scopes=spec.scopes,
        expires_at=spec.expires_at,
    )
    return JSONResponse(answer, status_code=201, headers=NO_STORE_ONCE)


@api.route(
    "DELETE",
    "/api/v1/workspace_api_tokens/{id}",
    summary="Revoke a workspace token",
    guard=ORG_MANAGER,
    answers={
        204: Answer("Revoked"),
        **MANAGER_ERRORS,
        404: ("product.not_found", "workspace_token.not_found"),
    },
)
async def revoke_workspace_token(request: Request, manager: Manager) -> Response:
    return await _revoke(request, manager, workspace_tokens, "workspace_token.not_found")


# -- OAuth applications ------------------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/oauth_applications",
    summary="The organization's OAuth applications",
    guard=ORG_MANAGER,
    answers={
        200: obj(["oauth_applications"], oauth_applications={"type": "array"}),
        **MANAGER_ERRORS,
    },
)
async def list_applications(request: Request, manager: Manager) -> Response:
    apps = await auth_services(request).org_credentials.list_applications(manager.org_id)
    return JSONResponse({"oauth_applications": apps})


@api.route(
    "POST",
    "/api/v1/oauth_applications",
    summary="Register an OAuth application (its secret is shown once)",
    guard=ORG_MANAGER,
    body=RegisterApplication,
    answers={201: OAUTH_APPLICATION, 409: "key.too_many", **MANAGER_ERRORS},
)
async def register_application(
    request: Request, manager: Manager, body: RegisterApplication
) -> Response:
    spec = body.oauth_application
    await _room_for_one_more(request, oauth_applications, manager.org_id)
    answer = await auth_services(request).org_credentials.register_application(
        org_id=manager.org_id,
        owner_id=manager.user_id,
        name=spec.name,
        scopes=spec.scopes,
    )
    return JSONResponse(answer, status_code=201, headers=NO_STORE_ONCE)


@api.route(
    "DELETE",
    "/api/v1/oauth_applications/{id}",
    summary="Delete an OAuth application; its tokens stop working",
    guard=ORG_MANAGER,
    answers={
        204: Answer("Deleted"),
        **MANAGER_ERRORS,
        404: ("product.not_found", "oauth_application.not_found"),
    },
)
async def revoke_application(request: Request, manager: Manager) -> Response:
    return await _revoke(request, manager, oauth_applications, "oauth_application.not_found")


# -- the token endpoint ------------------------------------------------------------------

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def oauth_error(status: int, error: str, description: str, *, basic: bool = False) -> Response:
    headers = dict(NO_STORE)
    if basic:
        headers["WWW-Authenticate"] = 'Basic realm="notification-hub"'
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


async def _token_request(request: Request) -> dict[str, str] | None:
    """The token request's parameters (form-encoded as RFC 6749 says, or JSON)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = bytearray()
    try:
        async for chunk in request.stream():  # bounded as it arrives, not after
            raw += chunk
            if len(raw) > TOKEN_BODY_LIMIT:
                return None
    except ClientDisconnect:  # the client left mid-body: nothing to answer, nothing to log
        return None
    if media_type == "application/json":
        try:
            body = jsonsafe.loads(bytes(raw))
        except jsonsafe.UnsafeJSON:
            return None
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            return None
        return body
    if media_type != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(bytes(raw).decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return None  # RFC 6749 section 3.2: parameters must not be repeated
        if has_forbidden_characters(name + value):  # %00: PostgreSQL refuses NUL in text
            return None
        params[name] = value
    return params


def _basic_client(request: Request) -> tuple[str, str] | None:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeDecodeError, and non-ASCII text (latin-1 header)
        return ("", "")
    client_id, sep, secret = (unquote(part) for part in decoded.partition(":"))
    if not sep or has_forbidden_characters(client_id + secret):
        return ("", "")
    return (client_id, secret)


@api.route(
    "POST",
    "/oauth/token",
    summary="OAuth 2.0 client credentials grant (RFC 6749 section 4.4)",
    # The client authenticates in the body or by HTTP Basic, checked by the handler: its
    # refusals take RFC 6749's shape (section 5.2), not the hub's.
    guard=PUBLIC,
    body=TokenRequest,
    answers={
        200: Answer("An access token", obj(["access_token", "token_type"], access_token=STRING)),
        400: Answer(
            "invalid_request, unsupported_grant_type, invalid_scope (or the hub's "
            "`request.invalid_characters` for NUL in the query)",
            {"oneOf": [OAUTH_ERROR, ERROR]},
        ),
        401: Answer(
            "invalid_client, or the hub's `auth.key_in_browser` (a secret sent from a browser) "
            "and in production `auth.key_compromised` (sent over plain HTTP: the application "
            "is revoked)",
            {"oneOf": [OAUTH_ERROR, ERROR]},
        ),
        429: "rate_limited",
    },
)
async def issue_token(request: Request, caller: None) -> Response:
    """Client credentials: HTTP Basic, or `client_id` and `client_secret` in the body
    (form-encoded as RFC 6749 says, or JSON), never both."""
    services = auth_services(request)
    store = services.org_credentials
    limit = services.settings.rate_limits.login_ip
    await services.limiter.hit(limit, "oauth", client_address(request))
    params = await _token_request(request)
    if params is None:
        return oauth_error(
            400, "invalid_request", "Send form-encoded (or JSON) parameters, each at most once."
        )
    basic = _basic_client(request)
    if basic is not None and ("client_id" in params or "client_secret" in params):
        return oauth_error(400, "invalid_request", "Authenticate the client one way only.")
    client_id, client_secret = basic or (
        params.get("client_id", ""),
        params.get("client_secret", ""),
    )
    grant_type = params.get("grant_type")
    if not grant_type:
        return oauth_error(400, "invalid_request", "grant_type is required.")
    if not client_id or not client_secret:
        return oauth_error(401, "invalid_client", "Client authentication failed.", basic=True)
    application = await store.authenticate_client(client_id, client_secret)
    if application is None:
        services.credentials.alerts.failed_lookup(client_address(request))
        return oauth_error(401, "invalid_client", "Client authentication failed.", basic=True)
    # A secret that travelled from a browser or over plain HTTP: the hub's key refusals.
    await services.org_callers.refuse_exposed_client(request, application)
    if grant_type != "client_credentials":
        return oauth_error(
            400, "unsupported_grant_type", "Only client_credentials is supported here."
        )
    scopes = oc.granted_scopes(application, params.get("scope"))
    if scopes is None:
        return oauth_error(400, "invalid_scope", "The scope asks for more than the client has.")
    org = await store.organization(application.organization_id)
    if org is None:
        return oauth_error(401, "invalid_client", "Client authentication failed.", basic=True)
    answer = store.issue_access_token(application, org, scopes)
    return JSONResponse(answer, headers=NO_STORE)


# -- what org credentials can read -------------------------------------------------------


@api.route(
    "GET",
    "/api/v1/organization/members",
    summary="Members of the credential's organization (members:read)",
    guard=org_key("members:read"),
    answers={200: obj(["members"], members={"type": "array"}), 429: "rate_limited"},
)
async def organization_members(request: Request, caller: ServerCaller) -> Response:
    assert caller.organization_id is not None  # org_key admits organization credentials only
    members = await auth_services(request).org_credentials.members(caller.organization_id)
    return JSONResponse({"members": members})


routes = api.routes
