"""Forgot password → mail → reset, against a real hub and a real SMTP server (aiosmtpd).

Covers the white-labeled reset mail of a product created with the CLI, the origin check on
reset, what a reset does (new password works, the old one and every earlier session stop
working), single use, expiry (on `strict_hub`, whose reset links live 2 seconds), enumeration
safety of forgot_password, validation of the new password, localized error messages, and
that a reset also voids a half-finished login (organization choice) made with the old password.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr
from typing import Any

import httpx
import pytest

from auth.mail import PASSWORD_RESET as RESET_MAIL
from infra.i18n import MESSAGES
from tests.support import PASSWORD, Mailbox, bearer, login, mail_body, product_headers, register

NEW_PASSWORD = "BrandNewPass456!"
FORGOT = "/api/v1/auth/forgot_password"
RESET = "/api/v1/auth/reset_password"
# secrets.token_urlsafe(32): 43 characters of URL-safe base64.
TOKEN = r"[A-Za-z0-9_-]{43}"


# -- helpers --------------------------------------------------------------------------------


def decoded_header(message: Message, name: str) -> str:
    """A header with its RFC 2047 encoded words (non-ASCII names, subjects) decoded."""
    return str(make_header(decode_header(message[name])))


def text_of(message: Message) -> str:
    return mail_body(message).replace("\r\n", "\n")


def token_from(message: Message, link_prefix: str) -> str:
    """The reset token in the mail's link, which must start with `link_prefix`."""
    match = re.search(re.escape(link_prefix) + f"({TOKEN})(?![A-Za-z0-9_-])", text_of(message))
    assert match, f"no {link_prefix}<token> link in:\n{text_of(message)}"
    return match.group(1)


def demo_link_prefix(base_url: str) -> str:
    # The demo product has no reset URL template: the hub's own demo page is the default.
    return f"{base_url}/demo/#reset_token="


async def forgot(client: httpx.AsyncClient, email: str, product: str = "demo") -> httpx.Response:
    return await client.post(FORGOT, headers=product_headers(product), json={"email": email})


async def reset(
    client: httpx.AsyncClient,
    token: str,
    password: str = NEW_PASSWORD,
    confirmation: str | None = None,
    **request: Any,
) -> httpx.Response:
    body = {
        "token": token,
        "password": password,
        "password_confirmation": password if confirmation is None else confirmation,
    }
    return await client.put(RESET, json=body, **request)


async def requested_mail(
    client: httpx.AsyncClient, mailbox: Mailbox, email: str, product: str = "demo"
) -> Message:
    """Ask for a reset of `email` and return the new mail it produces."""
    already = len(mailbox.for_recipient(email, RESET_MAIL))
    response = await forgot(client, email, product)
    assert response.status_code == 202, response.text
    return (await mailbox.wait_for(email, count=already + 1, kind=RESET_MAIL))[-1]


async def requested_token(client: httpx.AsyncClient, mailbox: Mailbox, email: str) -> str:
    """A fresh reset token of `email` on the demo product, taken from the mailed link."""
    message = await requested_mail(client, mailbox, email)
    return token_from(message, demo_link_prefix(str(client.base_url).rstrip("/")))


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    return error


def assert_invalid_token(response: httpx.Response) -> dict:
    return assert_error(response, 400, "auth.invalid_reset_token")


async def assert_login(client: httpx.AsyncClient, email: str, password: str, works: bool) -> None:
    response = await login(client, email, password)
    if works:
        assert response.status_code == 200, response.text
    else:
        assert_error(response, 401, "auth.invalid_credentials")


def unique_slug(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- the mail -------------------------------------------------------------------------------


async def test_white_labeled_reset_mail(hub, client, mailbox, email):
    slug = unique_slug("gdpr")
    product_name = "Správce GDPR"
    created = hub.cli(
        "products",
        "create",
        "--slug",
        slug,
        "--name",
        product_name,
        "--mail-from-name",
        "Tým Správce GDPR",
        "--mail-from-address",
        "podpora@spravce-gdpr.example",
        "--reset-url",
        "https://app.example.com/reset?token={token}",
        "--default-locale",
        "cs",
        "--origin",
        "https://app.example.com",
    )
    assert created.returncode == 0, created.stderr

    registered = await register(client, email, product=slug)
    # No locale in the body nor Accept-Language: the user gets the product's default.
    assert registered["user"]["locale"] == "cs"

    message = await requested_mail(client, mailbox, email, product=slug)
    assert parseaddr(decoded_header(message, "From")) == (
        "Tým Správce GDPR",
        "podpora@spravce-gdpr.example",
    )
    assert message["To"] == email
    assert decoded_header(message, "Subject") == MESSAGES["mail.password_reset.subject"][
        "cs"
    ].format(product=product_name)

    token = token_from(message, "https://app.example.com/reset?token=")
    expected = MESSAGES["mail.password_reset.body"]["cs"].format(
        name="Jan Novak",
        product=product_name,
        minutes=60,
        link=f"https://app.example.com/reset?token={token}",
    )
    assert text_of(message).strip() == expected

    # The link's token resets the password, from the product's own browser origin.
    done = await reset(client, token, headers={"Origin": "https://app.example.com"})
    assert done.status_code == 200, done.text
    assert done.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert done.json() == {"message": MESSAGES["password_reset.done"]["cs"]}
    relogin = await login(client, email, NEW_PASSWORD, product=slug)
    assert relogin.status_code == 200, relogin.text


async def test_reset_from_foreign_origin_is_refused_and_keeps_token(client, mailbox, email):
    await register(client, email)
    token = await requested_token(client, mailbox, email)
    refused = await reset(client, token, headers={"Origin": "https://evil.example"})
    assert_error(refused, 403, "origin.forbidden")
    await assert_login(client, email, PASSWORD, works=True)
    assert (await reset(client, token)).status_code == 200


# -- what a reset does ----------------------------------------------------------------------


async def test_reset_changes_password_and_revokes_every_session(client, mailbox, email):
    first = await register(client, email)
    second = (await login(client, email)).json()
    token = await requested_token(client, mailbox, email)

    done = await reset(client, token)
    assert done.status_code == 200, done.text
    assert done.json() == {"message": MESSAGES["password_reset.done"]["en"]}

    await assert_login(client, email, NEW_PASSWORD, works=True)
    await assert_login(client, email, PASSWORD, works=False)
    for earlier in (first, second):
        refresh = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": earlier["refresh_token"]}
        )
        assert_error(refresh, 401, "auth.unauthorized")
        me = await client.get("/api/v1/auth/me", headers=bearer(earlier["access_token"]))
        assert_error(me, 401, "auth.unauthorized")


async def test_reset_token_is_single_use_and_retires_older_links(client, mailbox, email):
    await register(client, email)
    older = await requested_token(client, mailbox, email)
    newer = await requested_token(client, mailbox, email)
    assert older != newer

    assert (await reset(client, newer)).status_code == 200
    assert_invalid_token(await reset(client, newer, "AnotherPass789!"))
    # A reset also uses up every other link the user was sent.
    assert_invalid_token(await reset(client, older, "AnotherPass789!"))

    await assert_login(client, email, NEW_PASSWORD, works=True)
    await assert_login(client, email, "AnotherPass789!", works=False)


async def test_expired_reset_token_is_refused(strict_hub, mailbox, email):
    async with httpx.AsyncClient(base_url=strict_hub.url, timeout=30) as strict:
        await register(strict, email)
        stale = await requested_token(strict, mailbox, email)
        await asyncio.sleep(3)  # HUB_RESET_TOKEN_TTL=2 on strict_hub
        assert_invalid_token(await reset(strict, stale))
        await assert_login(strict, email, PASSWORD, works=True)
        await assert_login(strict, email, NEW_PASSWORD, works=False)

        # A fresh link used at once works there: the refusal above was the expiry.
        fresh = await requested_token(strict, mailbox, email)
        assert (await reset(strict, fresh)).status_code == 200
        await assert_login(strict, email, NEW_PASSWORD, works=True)


async def test_reset_voids_pending_organization_choice(client, mailbox, email):
    first = await register(client, email, organization="One")
    await register(client, email, organization="Two")
    pending = (await login(client, email)).json()
    assert pending["select_organization"] is True
    token = await requested_token(client, mailbox, email)
    assert (await reset(client, token)).status_code == 200
    chosen = await client.post(
        "/api/v1/auth/login/select_org",
        headers=product_headers(),
        json={
            "login_token": pending["login_token"],
            "organization_id": first["organization"]["id"],
        },
    )
    assert_error(chosen, 401, "auth.invalid_login_token")


# -- enumeration safety ---------------------------------------------------------------------


async def test_forgot_answers_alike_and_mails_only_members_of_the_product(
    hub, client, mailbox, email
):
    other = unique_slug("other")
    assert hub.cli("products", "create", "--slug", other, "--name", "Other").returncode == 0
    await register(client, email)
    unknown = f"nobody-{email}"
    foreign = f"foreign-{email}"  # a user of the other product only
    await register(client, foreign, product=other)

    responses = [await forgot(client, address) for address in (unknown, foreign, email)]
    assert [r.status_code for r in responses] == [202, 202, 202]
    assert responses[0].json() == responses[1].json() == responses[2].json()
    assert responses[0].json() == {"message": MESSAGES["password_reset.requested"]["en"]}

    await mailbox.wait_for(email, kind=RESET_MAIL)
    await asyncio.sleep(1)  # the other two requests' background work has long finished
    assert len(mailbox.for_recipient(email, RESET_MAIL)) == 1
    assert mailbox.for_recipient(unknown) == []
    assert mailbox.for_recipient(foreign, RESET_MAIL) == []


# -- validation and errors ------------------------------------------------------------------


async def test_reset_validation_changes_nothing(client, mailbox, email):
    await register(client, email)
    token = await requested_token(client, mailbox, email)

    short = assert_error(await reset(client, token, "short"), 422, "validation.failed")
    assert short["details"]["password"]["code"] == "password.too_short"
    mismatch = assert_error(
        await reset(client, token, NEW_PASSWORD, "SomethingElse1!"), 422, "validation.failed"
    )
    assert set(mismatch["details"]) == {"password_confirmation"}
    assert mismatch["details"]["password_confirmation"]["code"] == "password.confirmation_mismatch"
    assert_invalid_token(await reset(client, secrets.token_urlsafe(32)))

    await assert_login(client, email, PASSWORD, works=True)
    await assert_login(client, email, NEW_PASSWORD, works=False)
    # The refused attempts did not use the token up.
    assert (await reset(client, token)).status_code == 200
    await assert_login(client, email, NEW_PASSWORD, works=True)


@pytest.mark.parametrize(
    ("locale", "request_options"),
    [
        ("en", {}),
        ("cs", {"params": {"locale": "cs"}}),
        ("de", {"headers": {"Accept-Language": "de"}}),
    ],
)
async def test_invalid_token_error_is_localized(client, locale, request_options):
    response = await reset(client, secrets.token_urlsafe(32), **request_options)
    error = assert_invalid_token(response)
    assert error["message"] == MESSAGES["auth.invalid_reset_token"][locale]
    if locale != "en":
        assert error["message"] != MESSAGES["auth.invalid_reset_token"]["en"]
