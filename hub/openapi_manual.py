"""The hand-written OpenAPI 3.1 document, served at `GET /openapi.json` until every route
module declares its routes (`infra.api`) and `hub.openapi.generate` takes over; then this
module goes. (Over 350 lines for that reason: it is the document being replaced.)

Written by hand next to the routes (one entry per endpoint, shared shapes in `components`),
and checked against the running hub by schemathesis in tests/test_openapi.py: every status an
endpoint can answer is listed, and errors always have the `Error` shape.
"""

from __future__ import annotations

from typing import Any

from auth import answers as auth_answers
from auth.answers import BOOLEAN, DATETIME, INTEGER, NULLABLE_STRING, STRING, STRINGS, obj
from infra.api import ERROR, ERROR_TEXT, Schema
from notifications import answers as notification_answers

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": ERROR_TEXT[status],
            "content": {JSON: {"schema": _ref("Error")}},
        }
        for status in statuses
    }


def _ok(status: int, schema: dict[str, Any] | None, description: str = "OK") -> dict[str, Any]:
    if schema is None:
        return {str(status): {"description": description}}
    return {str(status): {"description": description, "content": {JSON: {"schema": schema}}}}


def _body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


# Statuses every JSON-body endpoint can answer, besides its own.
BODY_ERRORS = (400, 413, 415, 422)
PUBLIC = [{"productSlug": []}, {"publishableKey": []}]
USER = [{"accessToken": []}]
SERVER = [{"serverKey": []}]
ORG = [{"serverKey": []}, {"orgToken": []}]


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    security: list[dict[str, list[str]]] | None = None,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    tag: str,
) -> dict[str, Any]:
    # Any request may be refused with 400 `request.invalid_characters` (NUL in path or query).
    responses.setdefault("400", _errors(400)["400"])
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    operation["security"] = security or []
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


PAGE_PARAMS = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
    _query("cursor", {"type": "string"}),
    _query("unread", {"type": "string", "enum": ["true", "false", "1", "0"]}),
    _query("locale", {"type": "string", "enum": ["en", "cs", "de"]}),
]


def _refs(value: Any) -> Any:
    """A shape of `auth.answers` / `notifications.answers` with its inner shapes as `$ref`s."""
    if isinstance(value, Schema):
        return _ref(value.name)
    if isinstance(value, dict):
        return {k: _refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_refs(v) for v in value]
    return value


SCHEMAS: dict[str, Any] = {
    "Error": _refs(ERROR.schema),
    **{
        shape.name: _refs(shape.schema)
        for shape in (*auth_answers.SCHEMAS, *notification_answers.SCHEMAS)
    },
}

_credentials_body = obj(["email", "password"], email=STRING, password=STRING)
_register_body = obj(
    ["email", "password", "password_confirmation"],
    email=STRING,
    password=STRING,
    password_confirmation=STRING,
    name=STRING,
    organization_name=STRING,
    locale=STRING,
)
_recipient = obj(user_id=INTEGER, email=STRING, external_id=STRING)
_send_body = obj(
    ["title"],
    title=STRING,
    message=STRING,
    url=STRING,
    type=STRING,
    data={"type": "object"},
    user_id=INTEGER,
    email=STRING,
    external_id=STRING,
    recipients={"type": "array", "items": _recipient, "maxItems": 1000},
)

PATHS: dict[str, Any] = {
    "/api/v1/auth/register": {
        "post": _op(
            "Register a user and their organization; a token pair (409 when the email has an "
            "unconfirmed identity on another product of the pool: a link to set a password is "
            "mailed to it); no tokens but `email_verification_required` when the product "
            "requires a proven email",
            {
                **_ok(201, {"oneOf": [_ref("TokenAnswer"), _ref("PendingVerification")]}),
                **_errors(*BODY_ERRORS, 401, 403, 404, 409, 429),
            },
            security=PUBLIC,
            body=_body(_register_body),
            tag="auth",
        )
    },
    "/api/v1/auth/login": {
        "post": _op(
            "Log in; a token pair, or an organization choice",
            {**_ok(200, _ref("TokenAnswer")), **_errors(*BODY_ERRORS, 401, 403, 404, 429)},
            security=PUBLIC,
            body=_body(_credentials_body),
            tag="auth",
        )
    },
    "/api/v1/auth/login/select_org": {
        "post": _op(
            "Finish a login by choosing the organization",
            {**_ok(200, _ref("TokenAnswer")), **_errors(*BODY_ERRORS, 401, 403, 404, 429)},
            security=PUBLIC,
            body=_body(
                obj(["login_token", "organization_id"], login_token=STRING, organization_id=INTEGER)
            ),
            tag="auth",
        )
    },
    "/api/v1/auth/refresh": {
        "post": _op(
            "Rotate the refresh token; a new pair",
            {**_ok(200, _ref("TokenAnswer")), **_errors(*BODY_ERRORS, 401, 403, 404, 429)},
            body=_body(obj(["refresh_token"], refresh_token=STRING)),
            tag="auth",
        )
    },
    "/api/v1/auth/logout": {
        "post": _op(
            "Revoke the session (access token, or refresh_token in the body)",
            {**_ok(204, None, "Logged out"), **_errors(*BODY_ERRORS, 401, 403, 404)},
            body=_body(obj(refresh_token=STRING), required=False),
            tag="auth",
        )
    },
    "/api/v1/auth/forgot_password": {
        "post": _op(
            "Mail a reset link if the email is registered (always the same answer)",
            {
                **_ok(202, obj(["message"], message=STRING), "Accepted"),
                **_errors(*BODY_ERRORS, 401, 403, 404, 429),
            },
            security=PUBLIC,
            body=_body(obj(["email"], email=STRING)),
            tag="auth",
        )
    },
    "/api/v1/auth/reset_password": {
        "put": _op(
            "Set a new password with a reset token",
            {**_ok(200, obj(["message"], message=STRING)), **_errors(*BODY_ERRORS, 403, 429)},
            body=_body(
                obj(
                    ["token", "password", "password_confirmation"],
                    token=STRING,
                    password=STRING,
                    password_confirmation=STRING,
                )
            ),
            tag="auth",
        )
    },
    "/api/v1/auth/verify_email": {
        "post": _op(
            "Prove the email with the token of a verification link (single use)",
            {**_ok(200, obj(["message"], message=STRING)), **_errors(*BODY_ERRORS, 403, 429)},
            body=_body(obj(["token"], token=STRING)),
            tag="auth",
        )
    },
    "/api/v1/auth/resend_verification": {
        "post": _op(
            "Mail the signed-in user another verification link (409 when already proven)",
            {
                **_ok(202, obj(["message"], message=STRING), "Accepted"),
                **_errors(401, 403, 409, 429),
            },
            security=USER,
            tag="auth",
        )
    },
    "/api/v1/auth/me": {
        "get": _op(
            "The signed-in user, organization and subscription",
            {**_ok(200, obj()), **_errors(400, 401, 403, 404)},
            security=USER,
            tag="auth",
        ),
        "put": _op(
            "Update name, locale or password",
            {**_ok(200, obj()), **_errors(*BODY_ERRORS, 401, 403, 404)},
            security=USER,
            body=_body(obj(name=STRING, locale=STRING, password=STRING)),
            tag="auth",
        ),
    },
    "/.well-known/jwks.json": {
        "get": _op(
            "Public keys that verify the hub's tokens",
            _ok(200, obj(["keys"], keys={"type": "array", "items": obj()})),
            tag="auth",
        )
    },
    "/api/v1/notifications": {
        "post": _op(
            "Send a notification to one recipient or up to 1000 (Idempotency-Key honoured)",
            {
                **_ok(
                    201,
                    obj(
                        ["notifications", "count"],
                        notifications={"type": "array", "items": obj()},
                        count=INTEGER,
                    ),
                ),
                **_errors(*BODY_ERRORS, 401, 403, 409, 429),
            },
            security=ORG,
            body=_body(_send_body),
            parameters=[
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": STRING}
            ],
            tag="notifications",
        ),
        "get": _op(
            "The user's notifications, newest first",
            {**_ok(200, _ref("NotificationPage")), **_errors(400, 401, 403, 404, 422)},
            security=USER,
            parameters=PAGE_PARAMS,
            tag="notifications",
        ),
    },
    "/api/v1/notifications/unread_count": {
        "get": _op(
            "The user's unread count",
            {**_ok(200, obj(["unread_count"], unread_count=INTEGER)), **_errors(400, 401, 403)},
            security=USER,
            tag="notifications",
        )
    },
    "/api/v1/notifications/read_all": {
        "post": _op(
            "Mark all read",
            {**_ok(200, obj(["unread_count"], unread_count=INTEGER)), **_errors(400, 401, 403)},
            security=USER,
            tag="notifications",
        )
    },
    "/api/v1/notifications/{notification_id}/read": {
        "post": _op(
            "Mark one read",
            {**_ok(200, obj(["id", "read", "unread_count"])), **_errors(400, 401, 403, 404)},
            security=USER,
            parameters=[_path_id("notification_id")],
            tag="notifications",
        )
    },
    "/api/v1/users": {
        "post": _op(
            "Create or update a user by your external_id",
            {
                **_ok(201, obj(["user"], user=_ref("User")), "Created"),
                **_ok(200, obj(["user"], user=_ref("User")), "Updated"),
                **_errors(*BODY_ERRORS, 401, 403, 429),
            },
            security=SERVER,
            body=_body(
                obj(["external_id"], external_id=STRING, email=STRING, name=STRING, locale=STRING)
            ),
            tag="server",
        )
    },
    "/api/v1/users/{user_id}": {
        "get": _op(
            "A user of the key's environment",
            {**_ok(200, obj(["user"], user=_ref("User"))), **_errors(401, 403, 404, 429)},
            security=SERVER,
            parameters=[_path_id("user_id")],
            tag="server",
        )
    },
    "/api/v1/users/{user_id}/tokens": {
        "post": _op(
            "Mint an access token for a user",
            {**_ok(201, _ref("TokenAnswer")), **_errors(401, 403, 404, 429)},
            security=SERVER,
            parameters=[_path_id("user_id")],
            tag="server",
        )
    },
    "/api/v1/users/{user_id}/notifications": {
        "get": _op(
            "A user's notifications (server side)",
            {**_ok(200, _ref("NotificationPage")), **_errors(401, 403, 404, 422, 429)},
            security=ORG,
            parameters=[_path_id("user_id"), *PAGE_PARAMS],
            tag="server",
        )
    },
    "/api/v1/keys": {
        "get": _op(
            "The environment's keys (no plaintext)",
            {
                **_ok(200, obj(["keys"], keys={"type": "array", "items": _ref("ProductKey")})),
                **_errors(401, 403, 429),
            },
            security=SERVER,
            tag="keys",
        ),
        "post": _op(
            "Create a restricted key (its plaintext is in this answer only)",
            {**_ok(201, _ref("ProductKey")), **_errors(*BODY_ERRORS, 401, 403, 409, 429)},
            security=SERVER,
            body=_body(obj(["name", "scopes"], name=STRING, scopes=STRINGS)),
            tag="keys",
        ),
    },
    "/api/v1/keys/{key_id}/rotate": {
        "post": _op(
            "Replace a key; the old one stops working at once",
            {**_ok(201, _ref("ProductKey")), **_errors(401, 403, 404, 409, 429)},
            security=SERVER,
            parameters=[_path_id("key_id")],
            tag="keys",
        )
    },
    "/api/v1/keys/{key_id}": {
        "delete": _op(
            "Revoke a restricted key",
            {**_ok(204, None, "Revoked"), **_errors(401, 403, 404, 409, 429)},
            security=SERVER,
            parameters=[_path_id("key_id")],
            tag="keys",
        )
    },
    "/api/v1/product": {
        "get": _op(
            "The product's settings (secret key only)",
            {**_ok(200, obj(["product"])), **_errors(401, 403, 429)},
            security=SERVER,
            tag="keys",
        ),
        "patch": _op(
            "Change only the named settings: origins, alert webhook, email verification, link"
            " templates (live secret key only; an unknown field is a 422, {} changes nothing)",
            {**_ok(200, obj(["product"])), **_errors(*BODY_ERRORS, 401, 403, 429)},
            security=SERVER,
            body=_body(
                {
                    **obj(
                        origins=STRINGS,
                        alert_webhook_url=NULLABLE_STRING,
                        require_verified_email=BOOLEAN,
                        verify_url_template=NULLABLE_STRING,
                        reset_url_template=NULLABLE_STRING,
                    ),
                    "additionalProperties": False,
                }
            ),
            tag="keys",
        ),
    },
    "/api/v1/workspace_api_tokens": {
        "get": _op(
            "The organization's live workspace tokens",
            {**_ok(200, obj(["workspace_api_tokens"])), **_errors(400, 401, 403, 404, 429)},
            security=[{"accessToken": []}, {"orgToken": []}],
            tag="organization",
        ),
        "post": _op(
            "Issue a workspace token (shown once)",
            {
                **_ok(201, _ref("WorkspaceToken")),
                **_errors(*BODY_ERRORS, 401, 403, 404, 409, 429),
            },
            security=[{"accessToken": []}, {"orgToken": []}],
            body=_body(
                obj(
                    ["workspace_api_token"],
                    workspace_api_token=obj(
                        ["name"], name=STRING, scopes=STRINGS, expires_at=DATETIME
                    ),
                )
            ),
            tag="organization",
        ),
    },
    "/api/v1/workspace_api_tokens/{id}": {
        "delete": _op(
            "Revoke a workspace token",
            {**_ok(204, None, "Revoked"), **_errors(400, 401, 403, 404, 429)},
            security=[{"accessToken": []}, {"orgToken": []}],
            parameters=[_path_id("id")],
            tag="organization",
        )
    },
    "/api/v1/oauth_applications": {
        "get": _op(
            "The organization's OAuth applications",
            {**_ok(200, obj(["oauth_applications"])), **_errors(400, 401, 403, 404, 429)},
            security=[{"accessToken": []}, {"orgToken": []}],
            tag="organization",
        ),
        "post": _op(
            "Register an OAuth application (its secret is shown once)",
            {
                **_ok(201, _ref("OAuthApplication")),
                **_errors(*BODY_ERRORS, 401, 403, 404, 409, 429),
            },
            security=[{"accessToken": []}, {"orgToken": []}],
            body=_body(
                obj(
                    ["oauth_application"],
                    oauth_application=obj(["name"], name=STRING, scopes=STRINGS),
                )
            ),
            tag="organization",
        ),
    },
    "/api/v1/oauth_applications/{id}": {
        "delete": _op(
            "Delete an OAuth application; its tokens stop working",
            {**_ok(204, None, "Deleted"), **_errors(400, 401, 403, 404, 429)},
            security=[{"accessToken": []}, {"orgToken": []}],
            parameters=[_path_id("id")],
            tag="organization",
        )
    },
    "/oauth/token": {
        "post": _op(
            "OAuth 2.0 client credentials grant (RFC 6749 section 4.4)",
            {
                "200": {
                    "description": "An access token",
                    "content": {JSON: {"schema": obj(["access_token", "token_type"])}},
                },
                "400": {
                    "description": "invalid_request, unsupported_grant_type, invalid_scope",
                    "content": {JSON: {"schema": _ref("OAuthError")}},
                },
                "401": {
                    "description": "invalid_client",
                    "content": {JSON: {"schema": _ref("OAuthError")}},
                },
                **_errors(429),
            },
            security=[{"clientBasic": []}, {}],
            body={
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {
                        "schema": obj(
                            ["grant_type"],
                            grant_type=STRING,
                            scope=STRING,
                            client_id=STRING,
                            client_secret=STRING,
                        )
                    }
                },
            },
            tag="organization",
        )
    },
    "/api/v1/organization/members": {
        "get": _op(
            "Members of the credential's organization (members:read)",
            {**_ok(200, obj(["members"])), **_errors(401, 403, 429)},
            security=[{"orgToken": []}],
            tag="organization",
        )
    },
    "/healthz": {"get": _op("The process is alive", _ok(200, obj(["status"])), tag="operations")},
    "/readyz": {
        "get": _op(
            "SQL and the broker answer",
            {
                **_ok(200, obj(["status"])),
                "503": {
                    "description": "A part is unreachable",
                    "content": {JSON: {"schema": obj(["status", "failing"], failing=STRINGS)}},
                },
            },
            tag="operations",
        )
    },
    "/metrics": {
        "get": _op(
            "Prometheus metrics",
            {
                "200": {
                    "description": "Text exposition format",
                    "content": {"text/plain": {"schema": STRING}},
                },
                **_errors(401),
            },
            tag="operations",
        )
    },
    "/openapi.json": {
        "get": _op("This document", _ok(200, obj()), tag="operations"),
    },
}

SECURITY_SCHEMES = {
    "productSlug": {"type": "apiKey", "in": "header", "name": "X-Product-Slug"},
    "publishableKey": {"type": "apiKey", "in": "header", "name": "X-Publishable-Key"},
    "accessToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT (ES256, access)"},
    "serverKey": {"type": "http", "scheme": "bearer", "description": "sk_… or rk_… key"},
    "orgToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "wksp_… workspace token or an OAuth access token",
    },
    "clientBasic": {"type": "http", "scheme": "basic"},
}


def openapi_document(server_url: str, *, development: bool) -> dict[str, Any]:
    paths = dict(PATHS)
    if development:
        paths["/api/v1/dev/test_notification"] = {
            "post": _op(
                "Development only: a test notification to the caller",
                {**_ok(201, obj()), **_errors(400, 401, 403, 404)},
                security=USER,
                tag="notifications",
            )
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "notification-hub",
            "version": "1",
            "description": "Headless auth and realtime notifications. The WebSocket at "
            "`/cable?token=<access token>` speaks ActionCable (`actioncable-v1-json`); see the "
            "README. Every error has the `Error` shape.",
        },
        "servers": [{"url": server_url}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
    }
