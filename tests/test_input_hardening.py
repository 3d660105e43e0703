"""Hostile input never answers 5xx and never reaches storage: NUL, unpaired surrogates,
NaN/Infinity and deep nesting in bodies, query strings, paths and credential headers, on
SQLite and PostgreSQL (which refuses NUL in text and NaN in JSON, where SQLite stores both)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time

import pytest

from infra import jsonsafe
from tests.support import PASSWORD, api_user, bearer, create_product, login, product_headers
from tests.test_requests import error

JSON = {"Content-Type": "application/json"}
SEND = "/api/v1/notifications"


@pytest.fixture
async def product(hub):
    return create_product(hub)


def raw_json(text: str) -> bytes:
    """`text` as request bytes, escapes such as \\ud800 left for the server's decoder."""
    return text.encode()


async def listing(client, token: str) -> dict:
    response = await client.get(SEND, headers=bearer(token))
    assert response.status_code == 200, response.text
    return response.json()


# -- NUL and unpaired surrogates in JSON bodies ----------------------------------------------

BAD_STRINGS = ["\\u0000", "a\\u0000b", "\\ud800", "x\\udfff", "\\ud800\\ud800"]


@pytest.mark.parametrize("bad", BAD_STRINGS)
async def test_bad_characters_in_a_notification_are_refused_and_nothing_is_stored(
    client, product, bad
):
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    bodies = [
        f'{{"user_id": {user_id}, "title": "{bad}"}}',
        f'{{"user_id": {user_id}, "title": "t", "message": "{bad}"}}',
        f'{{"user_id": {user_id}, "title": "t", "data": {{"k": ["{bad}"]}}}}',
        f'{{"user_id": {user_id}, "title": "t", "data": {{"{bad}": 1}}}}',
        f'{{"external_id": "{bad}", "title": "t"}}',
    ]
    for body in bodies:
        response = await client.post(SEND, headers={**bearer(sk), **JSON}, content=raw_json(body))
        error(response, 400, "request.invalid_characters")
    assert (await listing(client, token))["notifications"] == []


@pytest.mark.parametrize("bad", ["\\u0000", "\\ud800"])
async def test_bad_characters_in_auth_and_server_bodies_are_refused(client, product, email, bad):
    sk, slug = product["sk_live"], product["slug"]
    public = product_headers(slug, **JSON)
    register = {
        "email": email,
        "password": PASSWORD,
        "password_confirmation": PASSWORD,
        "organization_name": "Acme",
    }
    cases = [
        ("/api/v1/auth/register", public, {**register, "name": "N"}, "name"),
        ("/api/v1/auth/register", public, register, "password"),
        ("/api/v1/auth/login", public, {"email": email, "password": PASSWORD}, "password"),
        ("/api/v1/users", {**bearer(sk), **JSON}, {"external_id": "e"}, "external_id"),
        ("/api/v1/users", {**bearer(sk), **JSON}, {"external_id": "e", "name": "n"}, "name"),
        ("/api/v1/keys", {**bearer(sk), **JSON}, {"kind": "restricted", "name": "n"}, "name"),
    ]
    for path, headers, body, field in cases:
        text = json.dumps(body).replace(f'"{field}": "', f'"{field}": "{bad}', 1)
        assert bad in text
        error(
            await client.post(path, headers=headers, content=raw_json(text)),
            400,
            ("request.invalid_characters"),
        )
    # Nothing was created: the registration never happened.
    error(await login(client, email, product=slug), 401, "auth.invalid_credentials")


async def test_raw_utf8_surrogates_and_control_bytes_are_malformed(client, product):
    """Python's json decodes bytes with "surrogatepass"; the hub decodes UTF-8 strictly."""
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    for title in (b"\xed\xa0\x80", b"a\x00b", b"\xff"):
        body = b'{"user_id": %d, "title": "' % user_id + title + b'"}'
        response = await client.post(SEND, headers={**bearer(sk), **JSON}, content=body)
        error(response, 400, "request.malformed_json")
    assert (await listing(client, token))["notifications"] == []


# -- NaN, Infinity, overflowing numbers, deep nesting ----------------------------------------


# Integers past the double range (about 1.8e308): JSON.parse reads them as Infinity.
TOO_BIG_INTEGERS = ["9" * 309, "-" + "9" * 309, "1" * 4000]


@pytest.mark.parametrize(
    "number",
    ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", *TOO_BIG_INTEGERS],
    ids=["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9x309", "-9x309", "1x4000"],
)
async def test_non_finite_numbers_are_refused(client, product, number):
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    body = f'{{"user_id": {user_id}, "title": "t", "data": {{"a": {number}}}}}'
    response = await client.post(SEND, headers={**bearer(sk), **JSON}, content=raw_json(body))
    error(response, 400, "request.malformed_json")
    assert (await listing(client, token))["notifications"] == []


async def test_large_integers_within_the_double_range_are_kept(client, product):
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    data = {"big": 2**63, "negative": -(2**63), "max": 10**308}
    response = await client.post(
        SEND, headers=bearer(sk), json={"user_id": user_id, "title": "t", "data": data}
    )
    assert response.status_code == 201, response.text
    [stored] = (await listing(client, token))["notifications"]
    assert stored["data"]["big"] == 2**63 and stored["data"]["negative"] == -(2**63)


async def test_deep_nesting_is_refused_quickly_even_on_login(client, product):
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    deep = "[" * 20000 + "]" * 20000
    started = time.monotonic()
    error(
        await client.post(
            "/api/v1/auth/login",
            headers=product_headers(product["slug"], **JSON),
            content=raw_json(deep),
        ),
        400,
        "request.malformed_json",
    )
    body = f'{{"user_id": {user_id}, "title": "t", "data": {{"a": {deep}}}}}'
    response = await client.post(SEND, headers={**bearer(sk), **JSON}, content=raw_json(body))
    error(response, 400, "request.malformed_json")
    assert time.monotonic() - started < 5  # not frozen
    # Brackets inside strings are text, not nesting; ordinary nesting is welcome.
    nested: dict = {"text": "[" * 500}
    for _ in range(20):
        nested = {"n": nested}
    response = await client.post(
        SEND, headers=bearer(sk), json={"user_id": user_id, "title": "t", "data": nested}
    )
    assert response.status_code == 201, response.text
    assert (await listing(client, token))["notifications"][0]["data"] == nested


async def test_recipient_ids_beyond_the_id_range_are_unknown_recipients(client, product):
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    for far in (2**31, 2**63, 10**20, -(2**63) - 1, 0):
        for body in ({"user_id": far}, {"recipients": [{"user_id": user_id}, {"user_id": far}]}):
            response = await client.post(SEND, headers=bearer(sk), json={"title": "t", **body})
            error(response, 422, "notification.unknown_recipients")
    assert (await listing(client, token))["notifications"] == []


# -- query strings, paths, headers -----------------------------------------------------------


async def test_nul_in_a_query_or_path_parameter_is_refused(client, product):
    _, token = await api_user(client, product["sk_live"])
    for target in (
        SEND + "?locale=%00",
        SEND + "?cursor=1%00",
        SEND + "?unread=%00",
        SEND + "/%00/read",
    ):
        method = client.post if target.endswith("/read") else client.get
        error(await method(target, headers=bearer(token)), 400, "request.invalid_characters")


async def test_non_ascii_and_huge_digits_in_query_parameters_are_a_422(client, product):
    _, token = await api_user(client, product["sk_live"])
    for query in ("cursor=%C2%B2", "limit=%D9%A3", "cursor=" + "9" * 5000, "limit=" + "1" * 30):
        response = await client.get(f"{SEND}?{query}", headers=bearer(token))
        assert error(response, 422, "validation.failed")["details"]


async def test_junk_in_credential_headers_is_a_401(client, product):
    latin = "\xff\xfe\x80".encode("latin-1")
    user_id, _ = await api_user(client, product["sk_live"])
    for scheme in (b"sk_live_", b"rk_live_", b"wksp_", b"eyJ", b""):
        headers = {"Authorization": b"Bearer " + scheme + latin}
        error(await client.get(SEND, headers=headers), 401, "auth.unauthorized")
        error(
            await client.get(f"/api/v1/users/{user_id}/notifications", headers=headers),
            401,
            "auth.unauthorized",
        )
    pk = {"X-Publishable-Key": b"pk_live_" + latin, **JSON}
    error(
        await client.post("/api/v1/auth/login", headers=pk, content=b"{}"),
        401,
        ("auth.unauthorized"),
    )
    slug = {"X-Product-Slug": latin * 100, **JSON}
    error(
        await client.post("/api/v1/auth/login", headers=slug, content=b"{}"),
        404,
        ("product.not_found"),
    )


async def test_nul_in_a_header_is_refused_before_the_app(hub, client, product):
    """The HTTP parser refuses NUL in header values (httpx will not even send one)."""
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    body = json.dumps({"user_id": user_id, "title": "t"}).encode()
    host, port = hub.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /api/v1/notifications HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer " + sk.encode() + b"\r\n"
        b"Idempotency-Key: a\x00b\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, answer_body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400", head
    # In the hub's error shape, although the app never saw the request.
    assert json.loads(answer_body)["error"]["code"] == "request.invalid_http"
    assert (await listing(client, token))["notifications"] == []


async def test_oauth_token_refuses_nul_and_surrogates_without_a_5xx(client):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    bad_form = b"grant_type=client_credentials&client_id=a%00&client_secret=s"
    response = await client.post("/oauth/token", headers=form, content=bad_form)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    bad_json = b'{"grant_type":"client_credentials","client_id":"\\ud800","client_secret":"s"}'
    response = await client.post("/oauth/token", headers=JSON, content=bad_json)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    basic = base64.b64encode(b"client\x00id:secret").decode()
    response = await client.post(
        "/oauth/token",
        headers={**form, "Authorization": f"Basic {basic}"},
        content=b"grant_type=client_credentials",
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    # A Basic credential that is not even ASCII (header bytes arrive as latin-1 text).
    response = await client.post(
        "/oauth/token",
        headers={**form, "Authorization": b"Basic \xc3\xa9\x80=="},
        content=b"grant_type=client_credentials",
    )
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


# -- rows stored before the checks existed ---------------------------------------------------


async def test_a_stored_nan_row_reads_as_null_instead_of_breaking_the_list(hub, client):
    if hub.database_url is not None:
        pytest.skip("PostgreSQL never stored NaN in a JSON column")
    product = create_product(hub)
    sk = product["sk_live"]
    user_id, token = await api_user(client, sk)
    publish = await client.post(SEND, headers=bearer(sk), json={"user_id": user_id, "title": "t"})
    notification_id = publish.json()["notifications"][0]["id"]
    with sqlite3.connect(hub.workdir / "hub.db", timeout=15) as db:
        db.execute(
            "UPDATE notifications SET data = ? WHERE id = ?",
            ('{"a": NaN, "b": [Infinity, -Infinity, 1.5], "c": "NaN"}', notification_id),
        )
    for response in (
        await client.get(SEND, headers=bearer(token)),
        await client.get(f"/api/v1/users/{user_id}/notifications", headers=bearer(sk)),
    ):
        assert response.status_code == 200, response.text
        data = response.json()["notifications"][0]["data"]
        assert data == {"a": None, "b": [None, None, 1.5], "c": "NaN"}


# -- the strict decoder itself (shared with the cable) ---------------------------------------


def test_strict_decoder_refuses_what_browsers_and_databases_refuse():
    for text, reason in [
        ("NaN", "malformed"),
        ('{"a": -Infinity}', "malformed"),
        ("[1e999]", "malformed"),
        ("9" * 309, "malformed"),
        ('{"a": -' + "9" * 309 + "}", "malformed"),
        ("[" + "1" * 4000 + "]", "malformed"),
        ("[" * 20000 + "]" * 20000, "malformed"),
        ("[" * 65 + "]" * 65, "malformed"),
        ('"\\ud800"', "characters"),
        ('{"\\u0000": 1}', "characters"),
        ('[{"a": ["x\\udc00"]}]', "characters"),
    ]:
        with pytest.raises(jsonsafe.UnsafeJSON) as refused:
            jsonsafe.loads(text)
        assert refused.value.reason == reason, text
    # Integers up to the largest double are kept exactly (JSON.parse reads them as numbers).
    assert jsonsafe.loads(str(2**63)) == 2**63
    assert jsonsafe.loads("1" + "0" * 308) == 10**308
    # A surrogate pair is one character (an emoji), brackets in strings are not nesting.
    assert jsonsafe.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert jsonsafe.loads(b'{"a": "[[[[\\\\\\"[[["}') == {"a": '[[[[\\"[[['}
    assert jsonsafe.nests_deeper_than('[{"a": "]]]]"}, [[]], [[[{}]]]]', 4)
    assert not jsonsafe.nests_deeper_than('[{"a": "[[[["}, [[]], [[[{}]]]]', 5)
    with pytest.raises(ValueError):
        jsonsafe.dumps({"a": float("nan")})
    assert jsonsafe.finite({"a": [float("inf"), 1.0], "b": "x"}) == {"a": [None, 1.0], "b": "x"}
