"""`GET /openapi.json` against the running hub: schemathesis generates requests for every
documented operation (with real credentials of the right kind, so that requests get past the
front door) and checks that nothing answers 5xx and no status is undocumented."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

from hub.openapi import PATHS
from tests.support import HubServer, api_user, create_product, run_async


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


@pytest.fixture(scope="module")
def credentials(openapi_hub: HubServer) -> dict[str, str]:
    product = create_product(openapi_hub)

    async def user_token() -> str:
        async with httpx.AsyncClient(base_url=openapi_hub.url) as client:
            return (await api_user(client, product["sk_live"]))[1]

    return {"slug": product["slug"], "sk": product["sk_live"], "access": run_async(user_token())}


def _headers(path: str, method: str, credentials: dict[str, str]) -> dict[str, str]:
    documented = PATHS.get(path, {}).get(method.lower(), {})
    kinds = {name for requirement in documented.get("security", []) for name in requirement}
    if "productSlug" in kinds:
        return {"X-Product-Slug": credentials["slug"]}
    if "accessToken" in kinds:
        return {"Authorization": f"Bearer {credentials['access']}"}
    if "serverKey" in kinds:
        return {"Authorization": f"Bearer {credentials['sk']}"}
    return {}


def test_every_operation_answers_only_documented_statuses(openapi_hub, credentials):
    api = schemathesis.openapi.from_url(openapi_hub.url + "/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 35
    for operation in operations:
        _exercise(operation, _headers(operation.path, operation.method, credentials))


def _exercise(operation, headers: dict[str, str]) -> None:
    """Generated requests for one operation, each checked against the document."""

    @settings(
        max_examples=int(os.environ.get("HUB_OPENAPI_EXAMPLES", "15")),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case) -> None:
        response = case.call(headers={**(case.headers or {}), **headers})
        case.validate_response(response, checks=(not_a_server_error, status_code_conformance))

    exercise()


def test_the_document_lists_every_route(openapi_hub: HubServer):
    from hub.app import create_app
    from hub.settings import Settings

    document = httpx.get(openapi_hub.url + "/openapi.json").json()
    from auth.tokens import generate_private_key_pem

    settings = Settings(
        database_url="sqlite:///unused.db", jwt_private_keys_pem=generate_private_key_pem()
    )
    app = create_app(settings)
    routes = {
        (route.path, method.lower())
        for route in app.routes
        for method in (getattr(route, "methods", None) or ())
        if method != "HEAD" and not route.path.startswith("/demo")
    }
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert routes - documented == set()
