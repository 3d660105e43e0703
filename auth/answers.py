"""The answer shapes of the identity API, named once: route declarations list them in their
`answers` and the OpenAPI document makes each a component (a shape inside another becomes a
`$ref`)."""

from __future__ import annotations

from typing import Any

from auth.keys import KEY_PREFIXES
from auth.tables import ENVIRONMENTS
from infra.api import Schema

STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
BOOLEAN: dict[str, Any] = {"type": "boolean"}
NULLABLE_STRING: dict[str, Any] = {"type": ["string", "null"]}
DATETIME: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}


def obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    """A JSON object schema with these properties (`required` first, as the document reads)."""
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


USER = Schema(
    "User",
    obj(
        ["id"],
        id=INTEGER,
        email=NULLABLE_STRING,
        name=STRING,
        locale=NULLABLE_STRING,
        email_verified=BOOLEAN,
    ),
)
ORGANIZATION = Schema("Organization", obj(["id", "name"], id=INTEGER, name=STRING, role=STRING))
TOKEN_ANSWER = Schema(
    "TokenAnswer",
    obj(
        ["access_token"],
        access_token=STRING,
        refresh_token=STRING,
        token_type=STRING,
        expires_in=INTEGER,
        user=USER,
        organization=ORGANIZATION,
        subscription=obj(),
        select_organization=BOOLEAN,
        organizations={"type": "array", "items": ORGANIZATION},
        login_token=STRING,
    ),
)
PENDING_VERIFICATION = Schema(
    "PendingVerification",
    obj(
        ["user", "organization", "email_verification_required"],
        user=USER,
        organization=ORGANIZATION,
        email_verification_required=BOOLEAN,
    ),
)
PRODUCT_KEY = Schema(
    "ProductKey",
    obj(
        ["id", "kind", "env", "key_prefix"],
        id=INTEGER,
        kind={"type": "string", "enum": list(KEY_PREFIXES)},
        env={"type": "string", "enum": list(ENVIRONMENTS)},
        name=NULLABLE_STRING,
        key_prefix=STRING,
        scopes={"type": ["array", "null"], "items": STRING},
        created_at=DATETIME,
        last_used_at=DATETIME,
        revoked_at=DATETIME,
        revoked_reason=NULLABLE_STRING,
        key={"type": "string", "description": "the plaintext, in the creating answer only"},
    ),
)
OWNER = Schema("Owner", {"type": ["object", "null"], "properties": {"id": INTEGER, "name": STRING}})
WORKSPACE_TOKEN = Schema(
    "WorkspaceToken",
    obj(
        ["id", "name", "scopes", "token_prefix"],
        id=INTEGER,
        name=STRING,
        scopes=STRINGS,
        token_prefix=STRING,
        last_used_at=DATETIME,
        expires_at=DATETIME,
        created_at=DATETIME,
        owner=OWNER,
        token={"type": "string", "description": "the plaintext, in the creating answer only"},
    ),
)
OAUTH_APPLICATION = Schema(
    "OAuthApplication",
    obj(
        ["id", "name", "client_id", "scopes"],
        id=INTEGER,
        name=STRING,
        client_id=STRING,
        scopes=STRINGS,
        last_used_at=DATETIME,
        created_at=DATETIME,
        owner=OWNER,
        client_secret={"type": "string", "description": "in the creating answer only"},
    ),
)
EXTENSION = Schema(
    "Extension",
    obj(
        ["id", "name", "scopes", "key_prefix"],
        id=INTEGER,
        name=STRING,
        scopes=STRINGS,
        webhook_url=NULLABLE_STRING,
        key_prefix=STRING,
        last_used_at=DATETIME,
        created_at=DATETIME,
        rotated_at=DATETIME,
        installed_by=OWNER,
        key={
            "type": "string",
            "description": "the plaintext `ext_…`, in the install and rotate answers only",
        },
    ),
)
OAUTH_ERROR = Schema("OAuthError", obj(["error"], error=STRING, error_description=STRING))
MESSAGE = obj(["message"], message=STRING)  # a localized confirmation

SCHEMAS = (
    USER,
    ORGANIZATION,
    TOKEN_ANSWER,
    PENDING_VERIFICATION,
    PRODUCT_KEY,
    OWNER,
    WORKSPACE_TOKEN,
    OAUTH_APPLICATION,
    EXTENSION,
    OAUTH_ERROR,
)
