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
from datetime import UTC, datetime
from urllib.parse import parse_qsl, unquote

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import org_credentials as oc
from auth.credentials import client_address
from auth.services import auth_services
from auth.tables import oauth_applications, workspace_tokens
from auth.transport import ORG_MANAGER, PUBLIC, org_key
from infra.db import utcnow
from infra.errors import FieldError, HubError, validation_failed
from infra.http import Fields, path_id, read_json
from infra.jsonsafe import has_forbidden_characters

TOKEN_BODY_LIMIT = 8 * 1024


async def _wrapped(request: Request, wrapper: str) -> Fields:
    body = await read_json(request, auth_services(request).settings.max_body_bytes)
    inner = body.get(wrapper)
    if not isinstance(inner, dict):
        raise validation_failed({wrapper: FieldError("field.not_object")})
    return Fields(inner)


def _scopes(fields: Fields) -> list[str]:
    raw = fields.body.get("scopes", [])
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        fields.error("scopes", "field.not_list")
        return []
    unknown = [s for s in raw if s not in oc.WORKSPACE_SCOPES]
    if unknown:
        fields.error("scopes", "scope.unknown", scope=unknown[0])
    return sorted(set(raw))


def _expires_at(fields: Fields) -> datetime | None:
    """The asked expiry in UTC: a future ISO 8601 instant with a time zone, at most
    `MAX_TOKEN_LIFETIME` ahead. UTC because SQLite keeps no offset (a stored +02:00 would
    read back as UTC, two hours late)."""
    raw = fields.body.get("expires_at")
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00")) if isinstance(raw, str) else None
    except ValueError:
        value = None
    now = utcnow()
    if value is None or value.tzinfo is None or value <= now:
        fields.error("expires_at", "field.not_datetime")
        return None
    # Compared before converting: 9999-12-31T23:59:59-00:01 overflows in UTC.
    if value - now > oc.MAX_TOKEN_LIFETIME:
        fields.error("expires_at", "field.too_far_ahead", years=oc.MAX_TOKEN_LIFETIME_YEARS)
        return None
    return value.astimezone(UTC)


async def _room_for_one_more(request: Request, table: sa.Table, org_id: int) -> None:
    store = auth_services(request).org_credentials
    if await store.count_active(table, org_id) >= oc.MAX_PER_ORGANIZATION:
        raise HubError(409, "key.too_many")


async def _revoke(request: Request, table: sa.Table, missing: str) -> Response:
    """Revoke one of the manager's organization's tokens or applications: 204, or 404."""
    manager = await ORG_MANAGER(request)
    row_id = path_id(request, "id", missing)
    if not await auth_services(request).org_credentials.revoke(table, manager.org_id, row_id):
        raise HubError(404, missing)
    return Response(status_code=204)


# -- workspace API tokens ----------------------------------------------------------------


async def list_workspace_tokens(request: Request) -> Response:
    manager = await ORG_MANAGER(request)
    tokens = await auth_services(request).org_credentials.list_workspace_tokens(manager.org_id)
    return JSONResponse({"workspace_api_tokens": tokens})


async def create_workspace_token(request: Request) -> Response:
    manager = await ORG_MANAGER(request)
    fields = await _wrapped(request, "workspace_api_token")
    name = fields.string("name", max_length=200)
    scopes = _scopes(fields)
    expires_at = _expires_at(fields)
    fields.check()
    await _room_for_one_more(request, workspace_tokens, manager.org_id)
    answer = await auth_services(request).org_credentials.issue_workspace_token(
        org_id=manager.org_id,
        owner_id=manager.user_id,
        name=name,
        scopes=scopes,
        expires_at=expires_at,
    )
    return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})


async def revoke_workspace_token(request: Request) -> Response:
    return await _revoke(request, workspace_tokens, "workspace_token.not_found")


# -- OAuth applications ------------------------------------------------------------------


async def list_applications(request: Request) -> Response:
    manager = await ORG_MANAGER(request)
    apps = await auth_services(request).org_credentials.list_applications(manager.org_id)
    return JSONResponse({"oauth_applications": apps})


async def register_application(request: Request) -> Response:
    manager = await ORG_MANAGER(request)
    fields = await _wrapped(request, "oauth_application")
    name = fields.string("name", max_length=200)
    scopes = _scopes(fields)
    fields.check()
    await _room_for_one_more(request, oauth_applications, manager.org_id)
    answer = await auth_services(request).org_credentials.register_application(
        org_id=manager.org_id,
        owner_id=manager.user_id,
        name=name,
        scopes=scopes,
    )
    return JSONResponse(answer, status_code=201, headers={"Cache-Control": "no-store"})


async def revoke_application(request: Request) -> Response:
    return await _revoke(request, oauth_applications, "oauth_application.not_found")


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
    raw = await request.body()
    if len(raw) > TOKEN_BODY_LIMIT:
        return None
    if media_type == "application/json":
        try:
            body = await read_json(request, TOKEN_BODY_LIMIT)
        except HubError:
            return None
        if not all(isinstance(v, str) for v in body.values()):
            return None
        return body
    if media_type != "application/x-www-form-urlencoded":
        return None
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
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


async def issue_token(request: Request) -> Response:
    await PUBLIC(request)  # the client authenticates below, answered as RFC 6749 says
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


async def organization_members(request: Request) -> Response:
    caller = await org_key("members:read")(request)
    assert caller.organization_id is not None  # org_key admits organization credentials only
    members = await auth_services(request).org_credentials.members(caller.organization_id)
    return JSONResponse({"members": members})


routes = [
    Route("/api/v1/workspace_api_tokens", list_workspace_tokens, methods=["GET"]),
    Route("/api/v1/workspace_api_tokens", create_workspace_token, methods=["POST"]),
    Route("/api/v1/workspace_api_tokens/{id}", revoke_workspace_token, methods=["DELETE"]),
    Route("/api/v1/oauth_applications", list_applications, methods=["GET"]),
    Route("/api/v1/oauth_applications", register_application, methods=["POST"]),
    Route("/api/v1/oauth_applications/{id}", revoke_application, methods=["DELETE"]),
    Route("/oauth/token", issue_token, methods=["POST"]),
    Route("/api/v1/organization/members", organization_members, methods=["GET"]),
]
