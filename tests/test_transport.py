"""The transport's guards, in process: how a credential is read from a request and from a
socket, that a missing or wrong-kind credential is refused before any lookup, and that every
guard documents itself the way the OpenAPI generator reads it. (The lookups themselves are
exercised against a real hub by the auth, key and org-credential tests.)"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from auth.transport import (
    EXTENSION_INSTALLER,
    METRICS_TOKEN,
    ORG_MANAGER,
    PUBLIC,
    SCHEMES,
    SITE,
    USER_TOKEN,
    Guard,
    bearer_token,
    org_key,
    presented_token,
    server_key,
    server_or_org_key,
)
from infra.api import security_schemes
from infra.errors import HubError


def connection(
    kind: str = "http", *, authorization: str | None = None, query: str = "", **services: Any
) -> HTTPConnection:
    app = Starlette()
    app.state.services = SimpleNamespace(auth=SimpleNamespace(**services))
    headers = [(b"authorization", authorization.encode())] if authorization is not None else []
    scope = {
        "type": kind,
        "app": app,
        "headers": headers,
        "query_string": query.encode(),
        "path": "/",
    }
    return HTTPConnection(scope)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("BEARER abc", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
        ("abc", None),
        (None, None),
    ],
)
def test_one_bearer_parser(header: str | None, token: str | None) -> None:
    assert bearer_token(connection(authorization=header)) == token


def test_a_socket_carries_its_token_in_the_query_a_request_in_its_header() -> None:
    socket = connection("websocket", authorization="Bearer header", query="token=query")
    assert presented_token(socket) == "query"
    assert presented_token(connection("websocket", query="token=")) is None
    request = connection(authorization="Bearer header", query="token=query")
    assert presented_token(request) == "header"


@pytest.mark.parametrize(
    "guard", [USER_TOKEN, ORG_MANAGER, server_key("keys:write"), org_key("members:read")]
)
async def test_no_credential_is_a_401_before_any_lookup(guard: Any) -> None:
    with pytest.raises(HubError) as refused:
        await guard(connection())  # no services to look anything up with
    assert (refused.value.status, refused.value.code) == (401, "auth.unauthorized")


async def test_a_server_route_refuses_a_user_token_or_a_publishable_key_unread() -> None:
    for token in ("a.b.c", "pk_live_" + "x" * 43, "wksp_" + "x" * 40):
        with pytest.raises(HubError) as refused:
            await server_key("users:read")(connection(authorization=f"Bearer {token}"))
        assert refused.value.status == 401


async def test_the_metrics_token_is_compared_when_set() -> None:
    def settings(token: str | None) -> dict[str, Any]:
        return {"settings": SimpleNamespace(metrics_token=token)}

    assert await METRICS_TOKEN(connection(**settings(None))) is None
    assert await METRICS_TOKEN(connection(authorization="Bearer s3", **settings("s3"))) is None
    for header in (None, "Bearer s4", "Basic s3"):
        with pytest.raises(HubError):
            await METRICS_TOKEN(connection(authorization=header, **settings("s3")))


def test_every_guard_documents_what_it_enforces() -> None:
    guards: list[Guard] = [  # each satisfies the declaration machinery's protocol
        PUBLIC,
        SITE,
        USER_TOKEN,
        ORG_MANAGER,
        EXTENSION_INSTALLER,
        METRICS_TOKEN,
        server_key("keys:write"),
        server_or_org_key("notifications:write"),
        org_key("members:read"),
    ]
    for guard in guards:
        assert guard.description
        if guard.scheme_name is None:
            assert guard.scheme is None and security_schemes(guard) == {}
            continue
        assert guard.scheme == SCHEMES[guard.scheme_name]
        assert guard.security[0] == {guard.scheme_name: []}
        assert all(len(requirement) == 1 for requirement in guard.security)
    assert server_or_org_key("notifications:write").security == [
        {"serverKey": []},
        {"orgToken": []},
        {"extensionKey": []},
    ]
    assert org_key("members:read").security == [{"orgToken": []}, {"extensionKey": []}]
    assert EXTENSION_INSTALLER.security == ORG_MANAGER.security  # never an extension key
    assert "`keys:write`" in server_key("keys:write").description
    assert server_key("keys:write") is server_key("keys:write")  # one guard per scope
