"""The console's OpenID Connect client against a provider that misbehaves in its answers: ID
tokens forged or re-signed (`alg: none`, HS256 keyed with the public key, expired, another
issuer, issued before the sign-in began, an unknown critical header, no subject), discovery
documents the hub must not trust, and token endpoints that fail or answer too much. The
provider is the real one of tests/oidc_provider.py; only its answers are rewritten.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from tests.oidc_provider import CLIENT_ID
from tests.oidc_support import (
    SIGN_IN,
    assert_refused,
    browser,
    hub,
    provider,
    running_hub,
    to_callback,
    with_param,
)

__all__ = ["browser", "hub", "provider"]  # fixtures, used by name


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json64(value: dict) -> str:
    return _b64(json.dumps(value).encode())


def _parts(token: str) -> tuple[dict, dict]:
    header, payload, _ = token.split(".")
    decode = lambda part: json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # noqa: E731
    return decode(header), decode(payload)


def rs256(header: dict, claims: dict, key) -> str:
    """A JWS signed by hand, so headers a library would refuse to write can be sent."""
    signing_input = f"{_json64(header)}.{_json64(claims)}"
    signature = key.private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def resigned(provider, header_changes: dict | None = None, **claim_changes):
    """A rewrite that re-signs the genuine ID token with the provider's own key after changing
    some claims (None deletes one): only the checks after the signature can refuse it."""

    def rewrite(token: str) -> str:
        header, claims = _parts(token)
        claims.update(claim_changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return rs256({**header, **(header_changes or {})}, claims, provider.key)

    return rewrite


async def refused_with(browser, hub, code: str, status: int = 403) -> str:
    answer = await browser.get(await to_callback(browser, hub))
    assert_refused(answer, code, status)
    return answer.text


async def test_alg_none_is_refused(hub, browser, provider):
    def unsigned(token: str) -> str:
        _, claims = _parts(token)
        return f"{_json64({'alg': 'none'})}.{_json64(claims)}."

    provider.rewrite_id_token = unsigned
    assert "algorithm" in await refused_with(browser, hub, "oidc.bad_token")


async def test_hs256_keyed_with_the_public_key_is_refused(hub, browser, provider):
    public_pem = provider.key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def confused(token: str) -> str:
        header, claims = _parts(token)
        signing_input = f"{_json64({**header, 'alg': 'HS256'})}.{_json64(claims)}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"

    provider.rewrite_id_token = confused
    assert "algorithm" in await refused_with(browser, hub, "oidc.bad_token")


async def test_expired_token_is_refused(hub, browser, provider):
    now = int(time.time())
    provider.rewrite_id_token = resigned(provider, exp=now - 3600, iat=now - 7200)
    assert "expired" in await refused_with(browser, hub, "oidc.bad_token")


async def test_token_from_another_issuer_is_refused(hub, browser, provider):
    provider.rewrite_id_token = resigned(provider, iss="https://accounts.example.com")
    assert "iss" in await refused_with(browser, hub, "oidc.bad_token")


async def test_token_issued_before_the_sign_in_began_is_refused(hub, browser, provider):
    provider.rewrite_id_token = resigned(provider, iat=int(time.time()) - 900)
    assert "before this sign-in" in await refused_with(browser, hub, "oidc.bad_token")


async def test_token_without_subject_or_with_critical_header_is_refused(hub, browser, provider):
    provider.rewrite_id_token = resigned(provider, sub=None)
    assert "sub" in await refused_with(browser, hub, "oidc.bad_token")
    provider.rewrite_id_token = resigned(provider, {"crit": ["exp"]})
    assert "extensions" in await refused_with(browser, hub, "oidc.bad_token")


async def test_no_id_token_is_refused(hub, browser, provider):
    provider.rewrite_id_token = lambda token: ""
    assert "no usable ID token" in await refused_with(browser, hub, "oidc.bad_token")


async def test_several_audiences_with_our_azp_sign_in(hub, browser, provider):
    provider.rewrite_id_token = resigned(provider, aud=[CLIENT_ID, "api"], azp=CLIENT_ID)
    answer = await browser.get(await to_callback(browser, hub))
    assert answer.status_code == 200, answer.text


async def test_callback_naming_another_issuer_is_refused(hub, browser):
    callback = await to_callback(browser, hub)
    answer = await browser.get(with_param(callback, iss="https://accounts.example.com"))
    assert_refused(answer, "oidc.issuer_mismatch")


async def test_token_endpoint_failures_are_clear(hub, browser, provider):
    provider.token_status = 500
    assert "failed" in await refused_with(browser, hub, "oidc.unavailable", 400)
    provider.token_status = 401
    await refused_with(browser, hub, "oidc.code_refused")
    provider.token_status = None
    provider.token_padding = 300 * 1024  # over the 256 KiB bound
    assert "could not be reached" in await refused_with(browser, hub, "oidc.unavailable", 400)
    provider.token_chunked = True
    assert "could not be reached" in await refused_with(browser, hub, "oidc.unavailable", 400)
    provider.token_padding = 1024  # streamed, but within the bound
    answer = await browser.get(await to_callback(browser, hub))
    assert answer.status_code == 200, answer.text


async def test_client_secret_post_when_the_provider_only_takes_that(provider, browser):
    provider.reset()
    provider.discovery_extra = {"token_endpoint_auth_methods_supported": ["client_secret_post"]}
    try:
        with running_hub(provider) as hub:
            answer = await browser.get(await to_callback(browser, hub))
            assert answer.status_code == 200, answer.text
    finally:
        provider.reset()


async def test_untrustworthy_discovery_documents_are_refused(provider, browser):
    for extra in (
        {"id_token_signing_alg_values_supported": ["HS256", "none"]},
        {"code_challenge_methods_supported": ["plain"]},
        {"jwks_uri": "http://keys.example.com/jwks"},  # plain http off this machine
        {"token_endpoint_auth_methods_supported": ["private_key_jwt"]},
        {"authorization_endpoint": None},
    ):
        provider.reset()
        provider.discovery_extra = extra
        with running_hub(provider) as hub:
            answer = await browser.get(hub.url + SIGN_IN)
            assert_refused(answer, "oidc.unavailable", 400)
    provider.reset()
