"""OpenID Connect sign-in (console/oidc*.py) against a real provider on localhost
(tests/oidc_provider.py: Authlib's authorization server), the hub's side served by a real
uvicorn, and an httpx client playing the browser: a cookie jar, redirects followed hop by hop.

The abuse cases come first: a tampered `state`, a replayed callback, a replayed code, a bad
ID-token signature, a wrong `aud` or `nonce`, a forged pending cookie, a provider whose
discovery names another issuer, a provider that is down, odd query strings, and a flood of
callbacks that must not make the hub hammer the provider's JWKS. Then the happy path.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from auth.tokens import TokenSigner, generate_private_key_pem, load_signing_keys
from console.oidc_pending import COOKIE
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET
from tests.oidc_support import (
    CALLBACK,
    SIGN_IN,
    assert_refused,
    browser,
    cookie_cleared,
    hub,
    provider,
    running_hub,
    to_callback,
    with_param,
)
from tests.support import free_port

__all__ = ["browser", "hub", "provider"]  # fixtures, used by name


# -- abuse ----------------------------------------------------------------------------------


async def test_tampered_state_is_refused_and_spends_the_pending_login(hub, browser):
    callback = await to_callback(browser, hub)
    refused = await browser.get(with_param(callback, state="attacker-chosen"))
    assert_refused(refused, "oidc.state_mismatch")
    assert cookie_cleared(refused)
    # The pending login is gone: even the genuine answer no longer signs in.
    assert_refused(await browser.get(callback), "oidc.state_mismatch")


async def test_head_on_the_callback_does_not_spend_the_sign_in(hub, browser):
    callback = await to_callback(browser, hub)
    assert (await browser.head(callback)).status_code == 400
    assert (await browser.get(callback)).status_code == 200


async def test_replayed_callback_is_refused(hub, browser):
    callback = await to_callback(browser, hub)
    assert (await browser.get(callback)).status_code == 200
    again = await browser.get(callback)
    assert_refused(again, "oidc.state_mismatch")


async def test_replayed_code_with_a_fresh_pending_login_is_refused_by_the_provider(
    hub, browser, provider
):
    first = await to_callback(browser, hub)
    assert (await browser.get(first)).status_code == 200
    # A fresh, genuine pending login and its state, but the code already exchanged.
    second = await to_callback(browser, hub)
    old_code = parse_qs(urlsplit(first).query)["code"][0]
    replay = await browser.get(with_param(second, code=old_code))
    assert_refused(replay, "oidc.code_refused")
    assert "Invalid 'code'" in provider.token_errors[-1]  # refused because it was used


async def test_bad_id_token_signature_is_refused(hub, browser, provider):
    provider.sign_with_rogue_key = True  # the published kid, another key's signature
    callback = await to_callback(browser, hub)
    refused = await browser.get(callback)
    assert_refused(refused, "oidc.bad_token")
    assert "signature" in refused.text


async def test_wrong_audience_is_refused(hub, browser, provider):
    provider.audience = "some-other-client"
    assert_refused(await browser.get(await to_callback(browser, hub)), "oidc.bad_token")
    # Several audiences with ours among them still need `azp` to name us.
    provider.audience = [CLIENT_ID, "some-other-client"]
    refused = await browser.get(await to_callback(browser, hub))
    assert_refused(refused, "oidc.bad_token")
    assert "azp" in refused.text


async def test_wrong_nonce_is_refused(hub, browser, provider):
    provider.nonce = "a-nonce-from-another-sign-in"
    refused = await browser.get(await to_callback(browser, hub))
    assert_refused(refused, "oidc.bad_token")
    assert "nonce" in refused.text


async def test_provider_refusal_is_a_clear_refusal(hub, browser, provider):
    provider.deny = True
    refused = await browser.get(await to_callback(browser, hub))
    assert_refused(refused, "oidc.provider_error")
    assert "access_denied" in refused.text


async def test_forged_or_altered_pending_cookie_is_refused(hub, browser):
    callback = await to_callback(browser, hub)
    genuine = browser.cookies[COOKIE]
    state = parse_qs(urlsplit(callback).query)["state"][0]
    other_key = TokenSigner(load_signing_keys(generate_private_key_pem()), hub.url)
    access, _ = hub.signer.issue("access", {"sub": "u1", "product": "p"}, 60)
    forgeries = {
        "altered": genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB"),
        "other key": other_key.issue(
            "console_oidc_pending",
            {"sub": "x", "aud": "notification-hub/console-oidc-pending", "state": state},
            600,
        )[0],
        "access token": access,
        "garbage": "not-a-jwt",
    }
    for name, value in forgeries.items():
        async with httpx.AsyncClient(timeout=20) as other:
            answer = await other.get(callback, headers={"Cookie": f"{COOKIE}={value}"})
        assert answer.status_code == 403, name
        assert "oidc.state_mismatch" in answer.text, name


async def test_odd_query_strings_get_a_clear_400(hub, browser):
    for query in (
        "code=abc&state=a%00b",
        "code=abc&state=one&state=two",
        "code=abc&state=" + "x" * 10_000,
        "code=%ff%fe&state=s",
        "code=abc&state=%7f",
    ):
        answer = await browser.get(f"{hub.url}{CALLBACK}?{query}")
        assert_refused(answer, "oidc.bad_request", status=400)
    answer = await browser.get(f"{hub.url}{SIGN_IN}?next=a%00b&next=c")
    assert_refused(answer, "oidc.bad_request", status=400)


async def test_discovery_naming_another_issuer_is_refused(provider, browser):
    provider.reset()
    provider.discovery_issuer = "https://accounts.example.com"
    try:
        with running_hub(provider) as hub:
            before = provider.hits["discovery"]
            answers = await asyncio.gather(*(browser.get(hub.url + SIGN_IN) for _ in range(30)))
            for answer in answers:
                assert_refused(answer, "oidc.unavailable", status=400)
                assert COOKIE not in answer.headers.get("set-cookie", "")
            # One fetch for the whole flood: the failure is remembered for a few seconds.
            assert provider.hits["discovery"] - before == 1
    finally:
        provider.reset()


async def test_provider_down_is_a_clear_error(provider, browser):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with running_hub(provider, issuer=dead, timeout=2.0) as hub:
        answer = await browser.get(hub.url + SIGN_IN)
        assert_refused(answer, "oidc.unavailable", status=400)
        assert "could not be reached" in answer.text


async def test_flood_of_callbacks_does_not_hammer_the_jwks(provider):
    provider.reset()
    with running_hub(provider) as hub:
        jwks_before, token_before = provider.hits["jwks"], provider.hits["token"]
        async with httpx.AsyncClient(timeout=20) as attacker:
            starts = [(await attacker.get(hub.url + SIGN_IN)) for _ in range(20)]
            pending = [(s.cookies[COOKIE], s.headers["location"]) for s in starts]
            answers = []
            for i in range(200):
                cookie, authorize_url = pending[i % len(pending)]
                state = parse_qs(urlsplit(authorize_url).query)["state"][0]
                if i % 10 == 0:  # the right state (read off the URL), a garbage code
                    query, headers = (
                        f"code=garbage{i}&state={state}",
                        {"Cookie": f"{COOKIE}={cookie}"},
                    )
                elif i % 2:  # a genuine pending cookie, a garbage state
                    query, headers = f"code=c{i}&state=s{i}", {"Cookie": f"{COOKIE}={cookie}"}
                else:  # no pending login at all
                    query, headers = f"code=c{i}&state=s{i}", {}
                answers.append(await attacker.get(f"{hub.url}{CALLBACK}?{query}", headers=headers))
        assert {a.status_code for a in answers} == {403}
        assert provider.hits["jwks"] == jwks_before  # never fetched: nothing got that far
        assert provider.hits["token"] - token_before == 20  # only the right states reach it


async def test_forged_kids_refetch_the_jwks_at_most_once_per_interval(provider, browser):
    provider.reset()
    with running_hub(provider, jwks_min_interval=60) as hub:
        start = provider.hits["jwks"]
        assert (await browser.get(await to_callback(browser, hub))).status_code == 200
        fetched = provider.hits["jwks"]
        for i in range(15):
            provider.rogue_kid = f"unknown-{i}"  # a kid the provider does not publish
            answer = await browser.get(await to_callback(browser, hub))
            assert_refused(answer, "oidc.bad_token")
        assert provider.hits["jwks"] <= fetched + 1
        assert hub.client.keys.fetches == provider.hits["jwks"] - start
    provider.reset()


async def test_a_rotated_key_is_picked_up(provider, browser):
    provider.reset()
    with running_hub(provider, jwks_min_interval=0.2) as hub:
        assert (await browser.get(await to_callback(browser, hub))).status_code == 200
        provider.rotate_key()
        await asyncio.sleep(0.3)
        answer = await browser.get(await to_callback(browser, hub))
        assert answer.status_code == 200, answer.text


# -- the cookie -----------------------------------------------------------------------------


def _pending_cookie_header(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    return header


async def test_pending_cookie_flags(hub, browser):
    start = await browser.get(hub.url + SIGN_IN)
    header = _pending_cookie_header(start)
    attributes = {part.strip().split("=")[0].lower(): part for part in header.split(";")}
    assert "httponly" in attributes
    assert attributes["samesite"].strip().lower() == "samesite=lax"
    assert attributes["path"].strip() == "Path=/v1/auth/callback"
    assert attributes["max-age"].strip() == "Max-Age=600"
    assert "secure" not in attributes  # development: plain http
    assert start.headers["cache-control"] == "no-store"


async def test_pending_cookie_is_secure_in_production(provider, browser):
    provider.reset()
    with running_hub(provider, secure_cookies=True) as hub:
        start = await browser.get(hub.url + SIGN_IN)
        assert "secure" in _pending_cookie_header(start).lower().split("; ")


# -- the happy path -------------------------------------------------------------------------


async def test_sign_in_succeeds_with_the_providers_identity(hub, browser, provider):
    start = await browser.get(f"{hub.url}{SIGN_IN}?next=/console/products/acme")
    authorize = parse_qs(urlsplit(start.headers["location"]).query)
    assert authorize["code_challenge_method"] == ["S256"]
    assert len(authorize["state"][0]) >= 32 and len(authorize["nonce"][0]) >= 32
    assert authorize["redirect_uri"] == [hub.url + CALLBACK]
    at_provider = await browser.get(start.headers["location"])
    answer = await browser.get(at_provider.headers["location"])
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "issuer": provider.issuer,
        "subject": provider.user.sub,
        "email": provider.user.email,
        "email_verified": True,
        "name": provider.user.name,
        "return_to": "/console/products/acme",
    }
    assert cookie_cleared(answer)
    assert COOKIE not in browser.cookies


async def test_return_path_off_site_becomes_the_console_home(hub, browser):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        callback = await to_callback(browser, hub, "?" + urlencode({"next": target}))
        answer = await browser.get(callback)
        assert answer.json()["return_to"] == "/console/", target


async def test_nothing_secret_is_logged(hub, browser, provider, caplog):
    caplog.set_level("DEBUG", logger="console.oidc")
    provider.sign_with_rogue_key = True
    callback = await to_callback(browser, hub)
    await browser.get(callback)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    logged = caplog.text
    assert "oidc.bad_token" in logged
    assert code not in logged and CLIENT_SECRET not in logged
