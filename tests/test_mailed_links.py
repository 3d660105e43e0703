"""Where a mailed link points when the product has no link template of its own: the demo
page, but only where the demo page serves that product. In production without
`HUB_DEMO_PRODUCT` naming it, `/demo` answers 404, so no such link is mailed."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from auth.accounts import User
from auth.mail import PASSWORD_RESET, VERIFY_EMAIL
from auth.mailed_links import MailedLinks, demo_page_serves
from auth.products import Product
from infra.settings import Settings

PRODUCT = Product(
    id=1,
    slug="acme",
    name="Acme",
    default_locale="en",
    mail_from_name=None,
    mail_from_address=None,
    reset_url_template=None,
    origins=("https://app.acme.com",),
)
USER = User(
    id=7,
    email="jan@acme.cz",
    name="Jan",
    locale="en",
    password_hash=None,
    created_at=datetime.now(UTC),
    pool_id=1,
    env="live",
    email_verified_at=None,
)


def settings(**changes: Any) -> Settings:
    return dataclasses.replace(Settings.from_env({}), **changes)


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[object] = []

    async def send(self, mail: object) -> None:
        self.sent.append(mail)


def links(settings: Settings, mailer: RecordingMailer) -> MailedLinks:
    # The database is never reached when no link can be made: `None` proves it.
    return MailedLinks(
        db=None,  # type: ignore[arg-type]
        settings=settings,
        hasher=None,  # type: ignore[arg-type]
        mailer=mailer,  # type: ignore[arg-type]
        limiter=None,  # type: ignore[arg-type]
        tokens=None,  # type: ignore[arg-type]
    )


def test_the_demo_page_serves_every_product_in_development_and_only_the_named_one_in_production():
    assert demo_page_serves(settings(), "acme")
    assert not demo_page_serves(settings(env="production"), "acme")
    assert not demo_page_serves(settings(env="production", demo_product="demo"), "acme")
    assert demo_page_serves(settings(env="production", demo_product="acme"), "acme")


@pytest.mark.parametrize("kind", [PASSWORD_RESET, VERIFY_EMAIL])
async def test_production_mails_no_link_to_a_demo_page_it_does_not_serve(
    kind: str, caplog: pytest.LogCaptureFixture
):
    mailer = RecordingMailer()
    with caplog.at_level(logging.WARNING, logger="auth.mailed_links"):
        await links(settings(env="production"), mailer)._mail_link(kind, USER, PRODUCT, "live")
    assert mailer.sent == []
    setting = "reset_url_template" if kind == PASSWORD_RESET else "verify_url_template"
    assert f"product acme has no {setting}" in caplog.text


def test_a_products_own_template_is_used_wherever_the_demo_page_is_served():
    production = links(settings(env="production"), RecordingMailer())
    template = "https://app.acme.com/reset?token={token}"
    assert production._link_template(PRODUCT, template, "reset_token") == template
    development = links(settings(public_url="http://127.0.0.1:8000"), RecordingMailer())
    assert (
        development._link_template(PRODUCT, None, "reset_token")
        == "http://127.0.0.1:8000/demo/#reset_token={token}"
    )
