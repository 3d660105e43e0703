"""Bad input gets a clear error in the standard shape and language, and changes nothing."""

from __future__ import annotations

import asyncio
import json

from hub.i18n import MESSAGES
from tests.support import PASSWORD, login, product_headers

REGISTER = "/api/v1/auth/register"


def error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


async def test_wrong_content_type(client, email):
    response = await client.post(
        REGISTER,
        headers=product_headers(),
        content=f"email={email}",
    )
    error(response, 415, "request.unsupported_media_type")


async def test_malformed_json_and_non_object(client):
    headers = product_headers(**{"Content-Type": "application/json"})
    error(
        await client.post(REGISTER, headers=headers, content=b"{nope"),
        400,
        "request.malformed_json",
    )
    error(
        await client.post(REGISTER, headers=headers, content=b"\xff\xfe"),
        400,
        "request.malformed_json",
    )
    error(
        await client.post(REGISTER, headers=headers, content=b"[1, 2]"), 400, "request.invalid_body"
    )


async def test_body_size_cap(client, email):
    big = {"email": email, "name": "x" * (70 * 1024)}
    error(
        await client.post(REGISTER, headers=product_headers(), json=big), 413, "request.too_large"
    )


async def test_every_invalid_field_is_reported_and_nothing_is_created(client, email):
    response = await client.post(
        REGISTER,
        headers=product_headers(),
        json={"email": "not-an-email", "password": "short", "password_confirmation": "short"},
    )
    details = error(response, 422, "validation.failed")["details"]
    assert details["email"]["code"] == "email.invalid"
    assert details["password"]["code"] == "password.too_short"
    assert details["organization_name"]["code"] == "field.required"

    mismatch = await client.post(
        REGISTER,
        headers=product_headers(),
        json={
            "email": email,
            "password": PASSWORD,
            "password_confirmation": PASSWORD + "x",
            "organization_name": "Acme",
        },
    )
    details = error(mismatch, 422, "validation.failed")["details"]
    assert list(details) == ["password_confirmation"]
    assert details["password_confirmation"]["code"] == "password.confirmation_mismatch"
    # Nothing was written: the email has no account.
    error(await login(client, email), 401, "auth.invalid_credentials")


async def test_password_policy_bounds(client, email):
    def body(password: str) -> dict:
        return {
            "email": email,
            "password": password,
            "password_confirmation": password,
            "organization_name": "Acme",
        }

    too_long = await client.post(REGISTER, headers=product_headers(), json=body("x" * 129))
    assert error(too_long, 422, "validation.failed")["details"]["password"]["code"] == (
        "password.too_long"
    )
    wrong_type = await client.post(
        REGISTER, headers=product_headers(), json={**body(PASSWORD), "email": 42}
    )
    assert error(wrong_type, 422, "validation.failed")["details"]["email"]["code"] == (
        "field.not_string"
    )
    exactly_eight = await client.post(REGISTER, headers=product_headers(), json=body("12345678"))
    assert exactly_eight.status_code == 201, exactly_eight.text


async def test_messages_follow_locale_query_then_header(client):
    bad = {"email": "x"}
    cs = await client.post(REGISTER + "?locale=cs", headers=product_headers(), json=bad)
    assert error(cs, 422, "validation.failed")["message"] == MESSAGES["validation.failed"]["cs"]
    assert cs.json()["error"]["details"]["email"]["message"] == MESSAGES["email.invalid"]["cs"]

    de = await client.post(
        REGISTER, headers=product_headers(**{"Accept-Language": "fr;q=1, de-DE;q=0.8"}), json=bad
    )
    assert error(de, 422, "validation.failed")["message"] == MESSAGES["validation.failed"]["de"]

    # ?locale= wins over Accept-Language.
    both = await client.post(
        REGISTER + "?locale=cs", headers=product_headers(**{"Accept-Language": "de"}), json=bad
    )
    assert both.json()["error"]["message"] == MESSAGES["validation.failed"]["cs"]
    en = await client.post(REGISTER, headers=product_headers(), json=bad)
    assert en.json()["error"]["message"] == MESSAGES["validation.failed"]["en"]


async def test_product_default_locale_is_the_fallback(hub, client, email):
    slug = "de-" + email.split("@")[0][5:]
    assert (
        hub.cli(
            "products", "create", "--slug", slug, "--name", "DE", "--default-locale", "de"
        ).returncode
        == 0
    )
    response = await login(client, email, product=slug)
    assert (
        error(response, 401, "auth.invalid_credentials")["message"]
        == (MESSAGES["auth.invalid_credentials"]["de"])
    )


async def test_unknown_route_and_method_use_the_error_shape(client):
    error(await client.get("/api/v1/nothing-here"), 404, "request.not_found")
    error(await client.get("/api/v1/auth/login"), 405, "request.method_not_allowed")


async def test_health(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}


async def _raw_exchange(hub, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def test_a_request_head_over_the_cap_is_refused_with_431_and_closed(hub, client):
    # Headers that never end: refused once 64 KiB have arrived, not buffered forever.
    never_ending = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n" + b"X-Junk: " + b"a" * 70_000
    answer = await _raw_exchange(hub, never_ending)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "request.headers_too_large"
    # A long URL that arrives whole with its head (a WebSocket upgrade): answered, not left open.
    upgrade = (
        b"GET /cable?token=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: hub\r\n"
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    assert (await _raw_exchange(hub, upgrade)).startswith(b"HTTP/1.1 431 ")
    # Heads within the cap are served as before: a 16 KB cookie, and keep-alive requests.
    ok = await client.get("/healthz", headers={"Cookie": "a=" + "b" * 16_000})
    assert ok.status_code == 200
    twice = b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n" * 2
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
    writer.write(twice)
    await writer.drain()
    first = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    second = await asyncio.wait_for(reader.readuntil(b"}"), 5)
    writer.close()
    assert first.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 200" in second
