"""The console's OpenID Connect parts that need no provider, in process: the JWKS refetch bound
under a concurrent flood of unknown `kid`s (the fetch is the component's own seam, a counter
here), the pending cookie and access tokens never passing for each other, the pages left out
of /openapi.json, and the configuration's refusals.
"""

from __future__ import annotations

import asyncio

import pytest
from joserfc.jwk import RSAKey
from starlette.responses import Response

from auth.tokens import (
    ACCESS,
    InvalidToken,
    TokenSigner,
    generate_private_key_pem,
    load_signing_keys,
)
from console.oidc import OidcClient, OidcConfig, PendingLogin
from console.oidc_errors import OidcError
from console.oidc_id_token import ProviderKeys
from console.oidc_pending import AUDIENCE, PENDING_TYPE, PendingCookie
from console.oidc_routes import oidc_routes
from hub.openapi import generate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwks_source(*kids: str):
    keys = [RSAKey.generate_key(2048, parameters={"kid": kid}) for kid in kids]
    calls = []

    async def fetch() -> dict:
        calls.append(1)
        await asyncio.sleep(0.01)  # a real fetch takes a while: floods pile up meanwhile
        return {"keys": [key.as_dict(private=False) for key in keys]}

    return fetch, calls


async def test_a_flood_of_unknown_kids_fetches_the_jwks_once_per_interval():
    fetch, calls = jwks_source("k1")
    clock = Clock()
    keys = ProviderKeys(fetch, min_interval=60, clock=clock)
    assert (await keys.key_for("k1")).kid == "k1"
    assert len(calls) == 1

    async def forged(i: int) -> str:
        try:
            await keys.key_for(f"forged-{i}")
        except OidcError as exc:
            return exc.code
        return "accepted"

    clock.now += 61  # past the interval: exactly one refetch however many arrive at once
    codes = await asyncio.gather(*(forged(i) for i in range(200)))
    assert set(codes) == {"oidc.bad_token"}
    assert len(calls) == 2
    codes = await asyncio.gather(*(forged(i) for i in range(200)))
    assert len(calls) == 2 and keys.fetches == 2


async def test_jwks_keeps_only_public_signing_keys():
    async def fetch() -> dict:
        return {
            "keys": [
                {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
                {**RSAKey.generate_key(2048).as_dict(private=False), "kid": "enc", "use": "enc"},
                {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
                "not a key",
            ]
        }

    keys = ProviderKeys(fetch, min_interval=0)
    for kid in ("shared", "enc", "broken", None):
        with pytest.raises(OidcError):
            await keys.key_for(kid)


def signer() -> TokenSigner:
    return TokenSigner(load_signing_keys(generate_private_key_pem()), "http://127.0.0.1:9")


def test_pending_cookie_and_access_tokens_never_pass_for_each_other():
    hub_signer = signer()
    pending, _ = hub_signer.issue(PENDING_TYPE, {"sub": "console-oidc", "aud": AUDIENCE}, 60)
    with pytest.raises(InvalidToken):
        hub_signer.verify(pending, ACCESS)
    with pytest.raises(InvalidToken):  # its type spoofed: the audience still keeps it out
        hub_signer.verify(hub_signer.issue(ACCESS, {"sub": "u", "aud": AUDIENCE}, 60)[0], ACCESS)
    access, _ = hub_signer.issue(ACCESS, {"sub": "u"}, 60)
    with pytest.raises(InvalidToken):
        hub_signer.verify(access, PENDING_TYPE, audience=AUDIENCE)


def test_pending_cookie_round_trip():
    cookies = PendingCookie(signer(), secure=True)
    response = Response()
    login = PendingLogin("s" * 43, "n" * 43, "v" * 86, 1_700_000_000.5, "/console/x")
    cookies.set(response, login)
    header = response.headers["set-cookie"]
    assert "Secure" in header and "HttpOnly" in header

    class Request:
        def __init__(self, value: str) -> None:
            self.cookies = {"hub_console_oidc": value}

    value = header.split(";")[0].split("=", 1)[1]
    assert cookies.read(Request(value)) == login


def test_the_pages_are_left_out_of_the_openapi_document():
    config = OidcConfig(
        "https://id.example.com", "client", "secret", "https://hub.example.com/v1/auth/callback"
    )

    async def on_identity(request, identity) -> Response:
        return Response()

    routes = oidc_routes(OidcClient(config), on_identity, signer=signer(), secure_cookies=True)
    assert generate(routes, "https://hub.example.com")["paths"] == {}


@pytest.mark.parametrize(
    "issuer, redirect_uri, secret",
    [
        ("http://id.example.com", "https://hub.example.com/v1/auth/callback", "s"),
        ("https://id.example.com", "http://hub.example.com/v1/auth/callback", "s"),
        ("https://id.example.com", "https://hub.example.com/v1/auth/callback", ""),
        ("id.example.com", "https://hub.example.com/v1/auth/callback", "s"),
    ],
)
def test_configuration_refusals(issuer, redirect_uri, secret):
    with pytest.raises(ValueError):
        OidcConfig(issuer, "client", secret, redirect_uri)


def test_the_client_secret_stays_out_of_the_config_repr():
    config = OidcConfig(
        "https://id.example.com", "client", "hunter2-secret", "https://h.example/cb"
    )
    assert "hunter2" not in repr(config)
