"""`GET /openapi.json` against the running hub: schemathesis generates requests for every
documented operation (with real credentials of the right kind, so that requests get past the
front door) and checks that nothing answers 5xx and no status is undocumented.

The poisoned run then plants hostile values into those requests — NUL, unpaired surrogates
(as JSON escapes and as raw UTF-8 bytes), NaN/Infinity, numbers that overflow to infinity and
20,000-deep nesting, in body values, body keys, query and path parameters and header values —
and checks that no answer is a 5xx, every error has the standard shape, and every JSON answer
is one a browser can parse (no NaN). Examples per operation: `HUB_OPENAPI_EXAMPLES` clean
(default 15) and `HUB_POISON_EXAMPLES` poisoned (default 80); the long run
`pytest -m fuzz tests/test_openapi.py` makes `HUB_FUZZ_EXAMPLES` (default 500) of each per
operation on both databases.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import status_code_conformance

from infra import jsonsafe
from tests.support import PASSWORD, HubServer, bearer, create_product, run_async

CLEAN_EXAMPLES = int(os.environ.get("HUB_OPENAPI_EXAMPLES", "15"))
POISONED_EXAMPLES = int(os.environ.get("HUB_POISON_EXAMPLES", "80"))
LONG_EXAMPLES = int(os.environ.get("HUB_FUZZ_EXAMPLES", "500"))


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def openapi_hub(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[HubServer]:
    # Both databases: they reject out-of-range values differently (SQLite at 2**63,
    # PostgreSQL's INTEGER at 2**31).
    database_url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    server = HubServer(workdir=tmp_path_factory.mktemp("openapi-hub"), database_url=database_url)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def credentials(openapi_hub: HubServer, served: dict[str, Any]) -> dict[str, Any]:
    """Fresh credentials of every kind (a previous run may have revoked some): the product's
    slug and secret key, an org owner's access token, a workspace token and an OAuth client."""
    product = create_product(openapi_hub)

    async def issue() -> dict[str, str]:
        async with httpx.AsyncClient(base_url=openapi_hub.url, timeout=30) as client:
            registered = await client.post(
                "/api/v1/auth/register",
                headers={"X-Product-Slug": product["slug"]},
                json={
                    "email": f"owner-{product['slug']}@example.com",
                    "password": PASSWORD,
                    "password_confirmation": PASSWORD,
                    "organization_name": "Acme",
                },
            )
            access = registered.json()["access_token"]
            scopes = ["notifications:read", "notifications:write", "members:read"]
            workspace = await client.post(
                "/api/v1/workspace_api_tokens",
                headers=bearer(access),
                json={"workspace_api_token": {"name": "fuzz", "scopes": scopes}},
            )
            application = await client.post(
                "/api/v1/oauth_applications",
                headers=bearer(access),
                json={"oauth_application": {"name": "fuzz", "scopes": scopes}},
            )
            client_id = application.json()["client_id"]
            secret = application.json()["client_secret"]
            return {
                "access": access,
                "wksp": workspace.json()["token"],
                "basic": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode(),
            }

    issued = run_async(issue())
    return {"slug": product["slug"], "sk": product["sk_live"], "document": served, **issued}


@pytest.fixture(scope="module")
def served(openapi_hub: HubServer) -> dict[str, Any]:
    """The document the hub serves (generated from its routes)."""
    return httpx.get(openapi_hub.url + "/openapi.json").json()


def _headers(path: str, method: str, credentials: dict[str, str]) -> dict[str, str]:
    """Credentials of the kind the served document names for the operation."""
    if path == "/oauth/token":
        return {"Authorization": credentials["basic"]}  # the client authenticates in the handler
    documented = credentials["document"]["paths"].get(path, {}).get(method.lower(), {})
    kinds = {name for requirement in documented.get("security", []) for name in requirement}
    if "productSlug" in kinds:
        return {"X-Product-Slug": credentials["slug"]}
    if "accessToken" in kinds:
        return {"Authorization": f"Bearer {credentials['access']}"}
    if "serverKey" in kinds:
        return {"Authorization": f"Bearer {credentials['sk']}"}
    if "orgToken" in kinds:
        return {"Authorization": f"Bearer {credentials['wksp']}"}
    return {}


def _operations(hub: HubServer) -> list[Any]:
    """Every documented operation; revocations last, so the credentials outlive the others."""
    api = schemathesis.openapi.from_url(hub.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 35
    return sorted(operations, key=lambda o: o.method.upper() == "DELETE" or "rotate" in o.path)


def test_every_operation_answers_only_documented_statuses(openapi_hub, credentials):
    for operation in _operations(openapi_hub):
        _exercise(
            operation, _headers(operation.path, operation.method, credentials), CLEAN_EXAMPLES
        )


def _exercise(operation, headers: dict[str, str], examples: int) -> None:
    """Generated requests for one operation, each checked against the document."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case) -> None:
        response = case.call(headers={**(case.headers or {}), **headers})
        case.validate_response(response, checks=(not_a_server_error, status_code_conformance))

    exercise()


def _app() -> Any:
    from auth.tokens import generate_private_key_pem
    from hub.app import create_app
    from infra.settings import Settings

    settings = Settings(
        database_url="sqlite:///unused.db", jwt_private_keys_pem=generate_private_key_pem()
    )
    return create_app(settings)


def _excluded(path: str) -> bool:
    """A path `hub.openapi.EXCLUDED` names (the demo page, the console's HTML pages)."""
    from hub.openapi import EXCLUDED

    return any(path == p or path.startswith(p + "/") for p in EXCLUDED)


def test_the_document_lists_every_route_and_only_routes(served: dict[str, Any]):
    """Both directions: every route is documented and every documented operation is routed
    (the app the test hub runs is built the same way: development settings)."""
    routes = {
        (route.path, method.lower())
        for route in _app().routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD" and not _excluded(route.path)
    }
    documented = {(path, method) for path, ops in served["paths"].items() for method in ops}
    assert routes == documented
    assert len(documented) >= 35


def test_every_declared_guard_is_the_one_enforced(openapi_hub: HubServer, served: dict[str, Any]):
    """The documented security of each operation is its endpoint's guard's schemes, and a
    guarded operation asked without any credential is refused before its body is read: 401,
    or for a browser's routes (a product slug or publishable key) 400 `product.required`."""
    from infra.api import Endpoint, security_schemes

    endpoints = [route for route in _app().routes if isinstance(route, Endpoint)]
    assert len(endpoints) >= 35
    guarded = 0
    with httpx.Client(base_url=openapi_hub.url, timeout=30) as client:
        for endpoint in endpoints:
            operation = served["paths"][endpoint.path][endpoint.method.lower()]
            schemes = security_schemes(endpoint.guard)
            assert operation["security"] == [{name: []} for name in schemes], endpoint.path
            for name, scheme in schemes.items():
                assert served["components"]["securitySchemes"][name] == scheme
            if not schemes or endpoint.path == "/metrics":  # /metrics: open without a token
                continue
            guarded += 1
            path = re.sub(r"{[^}]+}", "1", endpoint.path)
            answer = client.request(endpoint.method, path)
            browser = "productSlug" in schemes
            status, code = (400, "product.required") if browser else (401, "auth.unauthorized")
            assert answer.status_code == status, (endpoint.method, endpoint.path, answer.text)
            assert answer.json()["error"]["code"] == code
            assert str(status) in operation["responses"]
    assert guarded >= 25


# -- the poisoned run ------------------------------------------------------------------------

SENTINEL = "\u2063poison\u2063"
FORBIDDEN = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
# Text holding at least one character that no database or UTF-8 encoder accepts.
FORBIDDEN_TEXT = st.tuples(st.text(max_size=4), FORBIDDEN, st.text(max_size=4)).map("".join)
# JSON fragments a strict decoder must refuse, as the bytes that go on the wire.
POISON_JSON = st.one_of(
    FORBIDDEN_TEXT.map(lambda text: json.dumps(text).encode()),  # "\u0000", "\ud800" escapes
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-2e400"]),
    st.integers(65, 20_000).map(lambda n: b"[" * n + b"]" * n),
    st.sampled_from([b'"\xed\xa0\x80"', b'"a\x00b"', b'"\xff"']),  # raw surrogate, NUL, junk
)
HEADER_JUNK = st.binary(min_size=1, max_size=40).map(
    lambda raw: bytes(b if b >= 0x80 else (b % 0x5E) + 0x21 for b in raw)  # obs-text + visible
)


def _wire(text: str) -> str:
    """Percent-encoding of any text, unpaired surrogates included (as their UTF-8 bytes)."""
    return quote_from_bytes(text.encode("utf-8", "surrogatepass"), safe="")


def _slots(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """Where a poison can go in a decoded body: ("value", path) or ("key", path)."""
    found: list[tuple[tuple, str]] = [(path, "value")]
    if isinstance(value, dict):
        found += [(path, "key")]
        for key, item in value.items():
            found += _slots(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _slots(item, (*path, index))
    return found


def _plant(body: Any, slot: tuple[tuple, str]) -> Any:
    """A copy of `body` with SENTINEL as the value at the slot's path, or as a new key there."""
    path, kind = slot
    if not path and kind == "value":
        return SENTINEL
    body = json.loads(json.dumps(body))
    parent = body
    for step in path[:-1] if kind == "value" else path:
        parent = parent[step]
    if kind == "key":
        parent[SENTINEL] = 1
    else:
        parent[path[-1]] = SENTINEL
    return body


def _poisoned_request(case, headers: dict[str, str], draw) -> tuple[str, dict, bytes | None, str]:
    """The URL, headers and body of `case` with one hostile value planted; and where."""
    operation = case.operation
    generated = None if isinstance(case.body, NotSet) else case.body
    targets = ["query", "header"]
    if case.path_parameters:
        targets.append("path")
    if generated is not None or operation.method.upper() in ("POST", "PUT", "PATCH"):
        targets += ["body", "body"]
    target = draw(st.sampled_from(targets))
    path_parameters = {k: quote(str(v), safe="") for k, v in (case.path_parameters or {}).items()}
    query = dict(case.query or {})
    # Generated header values may carry what HTTP clients refuse to send (edge whitespace).
    generated_headers = {k: str(v).strip() for k, v in (case.headers or {}).items()}
    request_headers = {**{k: v for k, v in generated_headers.items() if v.isprintable()}, **headers}
    form = case.media_type == "application/x-www-form-urlencoded"
    body = generated if generated is not None else {}
    content: bytes | None = None
    if target == "path":
        name = draw(st.sampled_from(sorted(path_parameters)))
        path_parameters[name] = _wire(draw(FORBIDDEN_TEXT))
    elif target == "query":
        name = draw(st.sampled_from(["locale", "cursor", "limit", "unread", *sorted(query)]))
        query[name] = draw(FORBIDDEN_TEXT)
    elif target == "header":
        name = draw(
            st.sampled_from(
                ["Idempotency-Key", "X-Product-Slug", "X-Publishable-Key", "Authorization"]
            )
        )
        value = draw(HEADER_JUNK)
        prefix = request_headers.get(name, "")[: draw(st.integers(0, 60))].encode("latin-1")
        request_headers[name] = prefix + value  # type: ignore[assignment]
    elif form:
        fields = {str(k): str(v) for k, v in (body if isinstance(body, dict) else {}).items()}
        name = draw(st.sampled_from(["grant_type", "client_id", "client_secret", *sorted(fields)]))
        fields[name] = draw(FORBIDDEN_TEXT)
        content = "&".join(f"{_wire(k)}={_wire(v)}" for k, v in fields.items()).encode()
    else:
        slot = draw(st.sampled_from(_slots(body)))
        planted = json.dumps(_plant(body, slot), ensure_ascii=False).encode()
        content = planted.replace(
            json.dumps(SENTINEL, ensure_ascii=False).encode(), draw(POISON_JSON)
        )
    if content is None and generated is not None:
        if form:
            content = "&".join(f"{_wire(str(k))}={_wire(str(v))}" for k, v in body.items()).encode()
        else:
            content = json.dumps(generated).encode()
    if content is not None:
        request_headers["Content-Type"] = case.media_type or "application/json"
    path = operation.path.format(**path_parameters)
    pairs = [(k, v) for k, v in query.items() for v in (v if isinstance(v, list) else [v])]
    url = path + (
        "?" + "&".join(f"{_wire(str(k))}={_wire(str(v))}" for k, v in pairs) if pairs else ""
    )
    return url, request_headers, content, target


def _check_poisoned_answer(response: httpx.Response, path: str, target: str) -> None:
    described = (
        f"{response.request.method} {response.request.url} ({target}): {response.text[:300]}"
    )
    assert response.status_code < 500, described
    media_type = response.headers.get("content-type", "")
    if response.status_code == 400 and not media_type.startswith("application/json"):
        assert target == "header", described  # the HTTP parser refused the header itself
        return
    if not media_type.startswith("application/json"):
        return  # /metrics
    answer = jsonsafe.loads(response.content)  # a browser's JSON.parse accepts it
    if response.status_code >= 400:
        if path == "/oauth/token" and isinstance(answer.get("error"), str):
            return  # RFC 6749's own error shape
        assert set(answer) == {"error"}, described
        assert answer["error"]["code"] and answer["error"]["message"], described


def _poison(hub: HubServer, operation, headers: dict[str, str], examples: int) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), data=st.data())
    def poison(case, data) -> None:
        url, request_headers, content, target = _poisoned_request(case, headers, data.draw)
        response = client.request(
            operation.method.upper(), url, headers=request_headers, content=content
        )
        _check_poisoned_answer(response, operation.path, target)

    with httpx.Client(base_url=hub.url, timeout=30) as client:
        poison()


def _assert_the_owner_can_still_list(hub: HubServer, credentials: dict[str, str]) -> None:
    """Whatever the fuzz stored, the list of notifications still answers valid JSON."""
    response = httpx.get(hub.url + "/api/v1/notifications", headers=bearer(credentials["access"]))
    assert response.status_code in (200, 401), response.text  # 401: the fuzz logged it out
    jsonsafe.loads(response.content)


def test_poisoned_input_never_answers_5xx(openapi_hub, credentials):
    for operation in _operations(openapi_hub):
        _poison(
            openapi_hub,
            operation,
            _headers(operation.path, operation.method, credentials),
            POISONED_EXAMPLES,
        )
    _assert_the_owner_can_still_list(openapi_hub, credentials)


@pytest.mark.fuzz
def test_long_fuzz_every_operation(openapi_hub, credentials):
    """`pytest -m fuzz`: HUB_FUZZ_EXAMPLES (500) clean and as many poisoned requests per
    operation."""
    for operation in _operations(openapi_hub):
        headers = _headers(operation.path, operation.method, credentials)
        _exercise(operation, headers, LONG_EXAMPLES)
        _poison(openapi_hub, operation, headers, LONG_EXAMPLES)
    _assert_the_owner_can_still_list(openapi_hub, credentials)
