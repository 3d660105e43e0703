"""Bad input gets a clear error in the standard shape and language, and changes nothing."""

from __future__ import annotations

from infra.i18n import MESSAGES
from tests.support import PASSWORD, bearer, create_product, login, product_headers

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


async def test_a_trailing_slash_is_not_redirected_before_credentials_are_checked(hub, client):
    # A redirect would come before any credential check, outside the error shape, and send the
    # key on to a URL built from forwarded headers.
    secret = create_product(hub)["sk_live"]
    headers = {**bearer(secret), "X-Forwarded-Proto": "http"}
    for path in ("/api/v1/keys/", "/api/v1/users/1/", "/api/v1/product/", "/api/v1/auth/me/"):
        answer = await client.get(path, headers=headers)
        error(answer, 404, "request.not_found")
        assert "location" not in answer.headers, path
    kept = await client.get(
        "/api/v1/keys", headers={**bearer(secret), "X-Forwarded-Proto": "https"}
    )
    assert kept.status_code == 200, kept.text  # the key was not used, so not revoked either
    demo = await client.get("/demo")  # the demo page's own redirect stays
    assert demo.status_code == 307 and demo.headers["location"].endswith("/demo/")
    assert (await client.get("/demo/")).status_code == 200


async def test_health(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ok"}
