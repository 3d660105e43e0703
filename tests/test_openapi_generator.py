"""The route declarations (`infra.api`, `infra.bodies`) and the generated document
(`hub.openapi.generate`), in process and in milliseconds, on a sample app built with the same
machinery and the real body types: every route documented and every documented operation
routed, the documented guard is the one enforced, body limits documented and enforced, the
localized field-error answer and the strict JSON refusals unchanged."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient

from auth import bodies as auth_bodies
from hub.openapi import UndeclaredRoute, generate
from hub.openapi import routes as openapi_routes
from infra.api import PUBLIC, Answer, Endpoints, Guard, Schema, read_body, security_schemes
from infra.bodies import Errors, Shape
from infra.errors import HubError, handle_http_exception, handle_hub_error, unauthorized
from infra.i18n import SUPPORTED_LOCALES
from infra.settings import Settings
from notifications import bodies as notification_bodies
from notifications.bodies import MAX_RECIPIENTS, MAX_TITLE, PAGE_MAX, Page, SendNotification


class HeaderKey:
    """A sample guard: `X-Key: <secret>` (the auth helper's guards follow the same protocol)."""

    def __init__(self, scheme_name: str, secret: str) -> None:
        self.scheme_name = scheme_name
        self.scheme = {"type": "apiKey", "in": "header", "name": "X-Key"}
        self.description = f"the {scheme_name}"
        self.secret = secret
        self.calls = 0

    async def __call__(self, connection: HTTPConnection) -> str:
        self.calls += 1
        if connection.headers.get("x-key") != self.secret:
            raise unauthorized()
        return self.secret


SERVER_KEY = HeaderKey("serverKey", "sk_test")
USER_KEY = HeaderKey("userKey", "user")
SENT = Schema("Sent", {"type": "object", "properties": {"count": {"type": "integer"}}})

api = Endpoints(tags=["sample"])


@api.route(
    "POST",
    "/api/v1/notifications",
    summary="Send a notification",
    guard=SERVER_KEY,
    body=SendNotification,
    body_limit=lambda settings: settings.max_body_bytes * 4,
    answers={201: SENT, 409: "idempotency.conflict", 429: "rate_limited"},
)
async def send(request: Request, caller: str, body: SendNotification) -> Response:
    return JSONResponse(
        {"count": len(body.names), "title": body.title, "key": body.idempotency_key},
        status_code=201,
    )


@api.route(
    "GET",
    "/api/v1/notifications",
    summary="A page of notifications",
    guard=USER_KEY,
    query=Page,
    answers={200: Answer("A page", {"type": "object"})},
)
async def page(request: Request, caller: str, query: Page) -> Response:
    return JSONResponse({"limit": query.limit, "cursor": query.cursor, "unread": query.unread})


@api.route(
    "POST",
    "/api/v1/auth/register",
    summary="Register",
    guard=PUBLIC,
    body=auth_bodies.Register,
    answers={201: {"type": "object"}, 409: "user.email_taken"},
)
async def register(request: Request, caller: None, body: auth_bodies.Register) -> Response:
    return JSONResponse({"email": body.email, "name": body.name, "locale": body.locale}, 201)


@api.route(
    "PATCH",
    "/api/v1/product",
    summary="Change product settings",
    guard=SERVER_KEY,
    body=auth_bodies.ProductSettings,
    answers={200: {"type": "object"}},
)
async def settings_patch(
    request: Request, caller: str, body: auth_bodies.ProductSettings
) -> Response:
    return JSONResponse({"origins": body.origins, "webhook": body.names_webhook})


@api.route(
    "DELETE",
    "/api/v1/keys/{key_id}",
    summary="Revoke a key",
    guard=SERVER_KEY,
    answers={204: None, 404: "key.not_found"},
)
async def revoke(request: Request, caller: str) -> Response:
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/v1/workspace_api_tokens",
    summary="Issue a workspace token",
    guard=USER_KEY,
    body=auth_bodies.CreateWorkspaceToken,
    answers={201: {"type": "object"}},
)
async def workspace_token(
    request: Request, caller: str, body: auth_bodies.CreateWorkspaceToken
) -> Response:
    spec = body.workspace_api_token
    return JSONResponse({"name": spec.name, "scopes": spec.scopes}, 201)


@api.route(
    "POST",
    "/api/v1/auth/logout",
    summary="Log out",
    guard=PUBLIC,
    body=auth_bodies.RefreshToken,
    body_required=False,
    answers={204: None},
)
async def logout(request: Request, caller: None) -> Response:
    """An access token, or else a refresh token in the body (so the body is optional)."""
    if "authorization" not in request.headers:
        await read_body(request, auth_bodies.RefreshToken)
    return Response(status_code=204)


async def demo(request: Request) -> Response:
    return Response()


async def cable(websocket: Any) -> None:
    return None


def sample_app(*extra: Any) -> Starlette:
    app = Starlette(
        routes=[
            *api.routes,
            *openapi_routes,
            Route("/demo", demo),
            Mount("/demo", routes=[]),
            WebSocketRoute("/cable", cable),
            *extra,
        ],
        exception_handlers={HubError: handle_hub_error, HTTPException: handle_http_exception},
    )
    app.state.services = SimpleNamespace(settings=Settings(max_body_bytes=64 * 1024))
    return app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(sample_app())


@pytest.fixture(scope="module")
def document(client: TestClient) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _routed(app: Starlette) -> set[tuple[str, str]]:
    return {
        (route.path, method.lower())
        for route in app.routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD" and not route.path.startswith("/demo")
    }


def _documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, ops in document["paths"].items() for method in ops}


# -- the document and the routes agree -------------------------------------------------------


def test_every_route_is_documented_and_every_operation_routed(client, document):
    routed = _routed(client.app)
    assert routed == _documented(document)
    assert ("/openapi.json", "get") in routed


def test_the_document_loads_in_schemathesis(document):
    operations = [
        result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()
    ]
    assert len(operations) == len(_documented(document))


def test_an_optional_body_is_documented_and_read_by_the_handler(client, document):
    operation = document["paths"]["/api/v1/auth/logout"]["post"]
    assert operation["requestBody"]["required"] is False
    assert operation["description"].startswith("An access token")
    assert (
        client.post("/api/v1/auth/logout", headers={"Authorization": "Bearer x"}).status_code == 204
    )
    refused = client.post("/api/v1/auth/logout", json={})
    assert refused.json()["error"]["details"]["refresh_token"]["code"] == "field.required"
    assert client.post("/api/v1/auth/logout", json={"refresh_token": "r"}).status_code == 204


def test_a_route_neither_declared_nor_excluded_is_refused():
    async def plain(request: Request) -> Response:
        return Response()

    with pytest.raises(UndeclaredRoute, match="/healthz"):
        generate(sample_app(Route("/healthz", plain)).routes, "http://hub")


def test_the_documented_guard_is_the_one_enforced(client, document):
    for endpoint in api.routes:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        expected = [{name: []} for name in security_schemes(endpoint.guard)]
        assert operation["security"] == expected
        if expected:
            assert {"401", "403"} <= set(operation["responses"])
            # Refused before the body is even read: an empty, wrong-typed body is a 401.
            answer = client.request(endpoint.method, endpoint.path.format(key_id=1))
            assert answer.status_code == 401, endpoint.path
            assert answer.json()["error"]["code"] == "auth.unauthorized"
    schemes = document["components"]["securitySchemes"]
    assert schemes == {"serverKey": SERVER_KEY.scheme, "userKey": USER_KEY.scheme}
    assert document["paths"]["/api/v1/auth/register"]["post"]["security"] == []


def test_the_guard_runs_before_the_handler():
    calls = SERVER_KEY.calls
    client = TestClient(sample_app())
    assert client.delete("/api/v1/keys/1", headers={"X-Key": "sk_test"}).status_code == 204
    assert SERVER_KEY.calls == calls + 1


def test_implied_and_declared_answers(document):
    send_op = document["paths"]["/api/v1/notifications"]["post"]
    assert set(send_op["responses"]) == {
        "201",
        "400",
        "401",
        "403",
        "409",
        "413",
        "415",
        "422",
        "429",
    }
    assert "`idempotency.conflict`" in send_op["responses"]["409"]["description"]
    assert send_op["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Sent"
    }
    revoke_op = document["paths"]["/api/v1/keys/{key_id}"]["delete"]
    assert revoke_op["responses"]["204"] == {"description": "No content"}
    assert revoke_op["parameters"] == [
        {"name": "key_id", "in": "path", "required": True, "schema": {"type": "integer"}}
    ]
    error = document["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_top_level_info_servers_and_tags(document):
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "notification-hub"
    assert document["servers"] == [{"url": Settings().public_url}]
    assert document["tags"] == [{"name": "operations"}, {"name": "sample"}]


# -- limits are named once: documented and enforced ------------------------------------------


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def test_the_recipient_limit_is_documented_and_enforced(client, document):
    recipients = _schema(document, "SendNotification")["properties"]["recipients"]
    assert recipients["maxItems"] == MAX_RECIPIENTS == 1000
    body = {"title": "Hi", "recipients": [{"user_id": i} for i in range(1, MAX_RECIPIENTS + 2)]}
    answer = client.post(
        "/api/v1/notifications",
        json=body,
        headers={"X-Key": "sk_test", "Accept-Language": "cs"},
    )
    assert answer.status_code == 422
    detail = answer.json()["error"]["details"]["recipients"]
    assert detail["code"] == "field.too_many"
    assert "1000" in detail["message"]
    body["recipients"] = body["recipients"][:MAX_RECIPIENTS]
    sent = client.post("/api/v1/notifications", json=body, headers={"X-Key": "sk_test"})
    assert sent.status_code == 201
    assert sent.json()["count"] == MAX_RECIPIENTS


def test_title_length_page_size_and_locales_are_documented(document):
    send_schema = _schema(document, "SendNotification")
    assert send_schema["properties"]["title"]["maxLength"] == MAX_TITLE
    assert "title" in send_schema["required"]
    parameters = {
        p["name"]: p for p in document["paths"]["/api/v1/notifications"]["get"]["parameters"]
    }
    assert parameters["limit"]["schema"]["maximum"] == PAGE_MAX
    assert parameters["limit"]["in"] == "query"
    # `locale` is negotiated, never refused: a language tag, the spoken ones named.
    assert "enum" not in parameters["locale"]["schema"]
    assert all(locale in parameters["locale"]["description"] for locale in SUPPORTED_LOCALES)
    assert parameters["unread"]["schema"]["enum"] == ["true", "1", "yes", "false", "0", "no"]
    header = {
        p["name"]: p for p in document["paths"]["/api/v1/notifications"]["post"]["parameters"]
    }
    assert header["Idempotency-Key"]["in"] == "header"
    assert header["Idempotency-Key"]["schema"]["maxLength"] == 255
    assert "Idempotency-Key" not in send_schema["properties"]
    settings_schema = _schema(document, "ProductSettings")
    assert settings_schema["additionalProperties"] is False
    assert settings_schema["properties"]["origins"]["maxItems"] == auth_bodies.MAX_ORIGINS


def test_a_query_is_validated(client):
    answer = client.get("/api/v1/notifications?limit=201", headers={"X-Key": "user"})
    assert answer.status_code == 422
    assert answer.json()["error"]["details"]["limit"]["code"] == "field.not_integer"
    ok = client.get("/api/v1/notifications?unread=TRUE&cursor=7", headers={"X-Key": "user"})
    assert ok.json() == {"limit": 50, "cursor": 7, "unread": True}
    off = client.get("/api/v1/notifications?unread=No", headers={"X-Key": "user"})
    assert off.json()["unread"] is False
    typo = client.get("/api/v1/notifications?unread=ture", headers={"X-Key": "user"})
    assert typo.status_code == 422
    assert typo.json()["error"]["details"]["unread"]["code"] == "field.not_boolean"


# -- the field-error answer ------------------------------------------------------------------


def test_an_invalid_body_answers_every_field_localized(client):
    answer = client.post(
        "/api/v1/auth/register?locale=de",
        json={"email": "nope", "password": "short", "password_confirmation": "x", "locale": "xx"},
    )
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "validation.failed"
    assert error["message"]
    codes = {name: detail["code"] for name, detail in error["details"].items()}
    assert codes == {
        "email": "email.invalid",
        "password": "password.too_short",
        "organization_name": "field.required",
        "locale": "field.unknown_locale",
    }
    assert all(detail["message"] for detail in error["details"].values())


def test_a_valid_body_reaches_the_handler_typed(client):
    answer = client.post(
        "/api/v1/auth/register",
        json={
            "email": "Ada@Example.com",
            "password": "correct horse",
            "password_confirmation": "correct horse",
            "organization_name": "Acme",
            "locale": "cs-CZ",
        },
    )
    assert answer.status_code == 201
    assert answer.json() == {"email": "ada@example.com", "name": "", "locale": "cs"}


def test_wrapped_bodies_answer_as_before(client):
    headers = {"X-Key": "user"}
    missing = client.post("/api/v1/workspace_api_tokens", json={}, headers=headers)
    assert missing.json()["error"]["details"] == {
        "workspace_api_token": {
            "code": "field.not_object",
            "message": missing.json()["error"]["details"]["workspace_api_token"]["message"],
        }
    }
    inner = client.post(
        "/api/v1/workspace_api_tokens",
        json={"workspace_api_token": {"scopes": ["nope"], "expires_at": "yesterday"}},
        headers=headers,
    )
    codes = {k: v["code"] for k, v in inner.json()["error"]["details"].items()}
    assert codes == {
        "name": "field.required",
        "scopes": "scope.unknown",
        "expires_at": "field.not_datetime",
    }
    ok = client.post(
        "/api/v1/workspace_api_tokens",
        json={"workspace_api_token": {"name": "ci", "scopes": ["admin", "admin"]}},
        headers=headers,
    )
    assert ok.json() == {"name": "ci", "scopes": ["admin"]}


def test_a_closed_body_refuses_an_unknown_field(client):
    answer = client.patch("/api/v1/product", json={"colour": "red"}, headers={"X-Key": "sk_test"})
    assert answer.json()["error"]["details"]["colour"]["code"] == "field.unknown"
    ok = client.patch(
        "/api/v1/product",
        json={"origins": ["https://app.example.com"]},
        headers={"X-Key": "sk_test"},
    )
    assert ok.json() == {"origins": ["https://app.example.com"], "webhook": False}


# -- the strict JSON rules of read_json are kept ---------------------------------------------


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"title": NaN}', "application/json", 400, "request.malformed_json"),
        (b'{"title": 1e999}', "application/json", 400, "request.malformed_json"),
        (b'{"title": "a\\u0000b"}', "application/json", 400, "request.invalid_characters"),
        (b'{"title": "\\ud800"}', "application/json", 400, "request.invalid_characters"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, "application/json", 400, "request.malformed_json"),
        (b"[1]", "application/json", 400, "request.invalid_body"),
        (b'{"title": "x"}', "text/plain", 415, "request.unsupported_media_type"),
        (b'{"t": "' + b"x" * 300_000 + b'"}', "application/json", 413, "request.too_large"),
    ],
)
def test_strict_json_refusals(client, content, content_type, status, code):
    answer = client.post(
        "/api/v1/notifications",
        content=content,
        headers={"X-Key": "sk_test", "Content-Type": content_type},
    )
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code


# -- declared bodies answer what the hand-written checks answered ----------------------------

# Each body with the field errors the hand-written checks (`infra.http.Fields`, deleted once
# every route declared its body) answered for it: the declared bodies must answer the same.
SEND_CASES = [
    ({}, {"recipients": "field.one_recipient_key", "title": "field.required"}),
    ({"title": "Hi", "user_id": 1}, {}),
    ({"title": "Hi", "user_id": True}, {"recipients[0]": "field.one_recipient_key"}),
    (
        {"title": " ", "email": "a@b.c", "user_id": 2},
        {"recipients": "field.one_recipient_key", "title": "field.required"},
    ),
    (
        {"title": "x" * 201, "recipients": []},
        {"recipients": "field.required", "title": "field.too_long"},
    ),
    ({"title": "Hi", "recipients": "all"}, {"recipients": "field.required"}),
    (
        {
            "title": "Hi",
            "recipients": [{"user_id": 1}, {"email": ""}, {"user_id": 1, "email": "x"}],
        },
        {"recipients[1]": "field.one_recipient_key", "recipients[2]": "field.one_recipient_key"},
    ),
    (
        {"title": 5, "message": None, "url": 7, "type": "t" * 65, "data": [], "external_id": "e"},
        {
            "title": "field.not_string",
            "url": "field.not_string",
            "type": "field.too_long",
            "data": "field.not_object",
        },
    ),
    ({"title": "Hi", "user_id": 1, "data": {"x": "y" * 17_000}}, {"data": "field.too_long"}),
]


def _declared(shape: type[Shape], body: dict[str, Any], **headers: str) -> dict[str, str]:
    try:
        shape.parse(body, Settings(), headers=headers)
    except HubError as exc:
        return {name: error.code for name, error in exc.fields.items()}
    return {}


@pytest.mark.parametrize(("body", "expected"), SEND_CASES)
def test_the_send_body_answers_as_the_hand_written_checks(body, expected):
    assert _declared(SendNotification, body) == expected


def test_the_idempotency_key_header_is_checked_with_the_body():
    assert _declared(
        SendNotification, {"title": "Hi", "user_id": 1}, **{"Idempotency-Key": " "}
    ) == {"Idempotency-Key": "field.required"}
    too_long = {"Idempotency-Key": "k" * 256}
    assert _declared(SendNotification, {"title": "Hi", "user_id": 1}, **too_long) == {
        "Idempotency-Key": "field.too_long"
    }


def test_errors_keep_the_first_error_of_a_field():
    errors = Errors()
    errors.add("a", "field.required")
    errors.add("a", "field.too_long")
    assert errors["a"].code == "field.required"


def test_every_body_type_writes_a_json_schema():
    shapes = [
        value
        for module in (auth_bodies, notification_bodies)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Shape) and value.fields
    ]
    assert len(shapes) >= 15
    for shape in shapes:
        schema = shape.json_schema()
        json.dumps(schema)  # plain JSON, nothing left to resolve
        assert schema["type"] == "object"


def test_the_guard_protocol_is_checked_at_declaration():
    class NotAGuard:
        pass

    with pytest.raises(TypeError, match="Guard"):
        Endpoints().route("GET", "/x", summary="x", guard=NotAGuard(), answers={})(page)
    assert isinstance(SERVER_KEY, Guard) and isinstance(PUBLIC, Guard)


REGISTER_CASES = [
    (
        {},
        {
            "email": "field.required",
            "password": "field.required",
            "password_confirmation": "field.required",
            "organization_name": "field.required",
        },
    ),
    (
        {"email": " ", "password": "x" * 129, "password_confirmation": None},
        {
            "email": "field.required",
            "password_confirmation": "field.required",
            "password": "password.too_long",
            "organization_name": "field.required",
        },
    ),
    (
        {"email": "a@b.co", "password": "long enough", "password_confirmation": "other"},
        {
            "password_confirmation": "password.confirmation_mismatch",
            "organization_name": "field.required",
        },
    ),
    (
        {"email": 5, "password": 5, "organization_name": "  ", "name": 7, "locale": "tlh"},
        {
            "email": "field.not_string",
            "password": "field.not_string",
            "password_confirmation": "field.required",
            "name": "field.not_string",
            "organization_name": "field.required",
            "locale": "field.unknown_locale",
        },
    ),
    (
        {"email": "a@b.co", "password": "x" * 10_001, "organization_name": "x" * 201},
        {
            "password": "field.too_long",
            "password_confirmation": "field.required",
            "organization_name": "field.too_long",
        },
    ),
]


@pytest.mark.parametrize(("body", "expected"), REGISTER_CASES)
def test_the_register_body_answers_as_the_hand_written_checks(body, expected):
    assert _declared(auth_bodies.Register, body) == expected


WORKSPACE_CASES = [
    ({}, {"name": "field.required"}),
    ({"name": "ci", "scopes": None, "expires_at": None}, {}),
    (
        {"name": "ci", "scopes": "admin", "expires_at": "2000-01-01T00:00:00Z"},
        {"scopes": "field.not_list", "expires_at": "field.not_datetime"},
    ),
    (
        {"name": "ci", "scopes": ["admin", 1], "expires_at": "2999-01-01T00:00:00"},
        {"scopes": "field.not_list", "expires_at": "field.not_datetime"},
    ),
    (
        {"name": "ci", "scopes": ["nope"], "expires_at": "9999-12-31T23:59:59-00:01"},
        {"scopes": "scope.unknown", "expires_at": "field.too_far_ahead"},
    ),
    (
        {"name": "", "scopes": [], "expires_at": 5},
        {"name": "field.required", "expires_at": "field.not_datetime"},
    ),
]


@pytest.mark.parametrize(("body", "expected"), WORKSPACE_CASES)
def test_the_workspace_token_body_answers_as_the_hand_written_checks(body, expected):
    assert _declared(auth_bodies.CreateWorkspaceToken, {"workspace_api_token": body}) == expected


def test_a_guard_accepting_several_credentials_documents_each_alternative():
    class ServerOrOrgKey(HeaderKey):
        @property
        def schemes(self) -> dict[str, dict[str, Any]]:
            return {
                "serverKey": SERVER_KEY.scheme,
                "orgToken": {"type": "http", "scheme": "bearer"},
            }

    either = Endpoints()
    either.route(
        "GET",
        "/api/v1/users/{user_id}/notifications",
        summary="x",
        guard=ServerOrOrgKey("serverKey", "k"),
        answers={200: None},
    )(page)
    document = generate(either.routes, "http://hub")
    operation = document["paths"]["/api/v1/users/{user_id}/notifications"]["get"]
    assert operation["security"] == [{"serverKey": []}, {"orgToken": []}]
    assert set(document["components"]["securitySchemes"]) == {"serverKey", "orgToken"}
