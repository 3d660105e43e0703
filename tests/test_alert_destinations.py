"""Security alerts reach people where they look: a Slack incoming webhook and email to the
product's owners and admins, each chosen per product, each deduplicated like the webhook.

A Slack receiver that hangs or fails neither delays the API answer nor stops the email; a
burst of identical alerts gives one post and one email per recipient; no message carries the
secret (where a Slack URL may point: tests/test_alert_targets.py). Delivery goes to real local
receivers: an HTTP server on a free port for Slack, an aiosmtpd server in this process for email.

The hub here is `create_app` served by uvicorn on a free port inside the test's event loop (not
a subprocess), because who is mailed is injected into `create_app` (`alert_recipients`), and
these tests pass their own list of members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import httpx
import pytest
import uvicorn

from auth import products
from auth.products import Product
from auth.tokens import generate_private_key_pem
from auth.webhook_targets import BlockedTarget
from hub.app import create_app
from hub.migrate import migrate
from hub.services import app_services
from infra.i18n import MESSAGES
from infra.settings import Settings
from tests.support import (
    AlertSink,
    Mailbox,
    bearer,
    free_port,
    mail_body,
)

ALERT_MAIL = "security_alert"


class ConsoleMembers:
    """Stands in for the operator console's member list (being built elsewhere): the test
    says who is a member of which real product, with which role, and the hub asks it, through
    the same `AlertRecipients` protocol the console will implement, whom to mail. Only owners
    and admins are alert recipients."""

    def __init__(self) -> None:
        self.members: dict[int, list[tuple[str, str]]] = {}
        self.asked: list[int] = []

    def add(self, product_id: int, email: str, role: str) -> None:
        self.members.setdefault(product_id, []).append((email, role))

    async def alert_emails(self, product_id: int) -> list[str]:
        self.asked.append(product_id)
        return [e for e, role in self.members.get(product_id, []) if role in ("owner", "admin")]


class ServedHub:
    def __init__(self, app, port: int, members: ConsoleMembers, mailbox: Mailbox) -> None:
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.members = members
        self.mailbox = mailbox

    async def product(self, *, locale: str = "en") -> tuple[Product, dict[str, str]]:
        slug = f"p-{uuid.uuid4().hex[:10]}"
        return await products.create_product(
            app_services(self.app).db,
            slug=slug,
            name=f"Shop {slug[2:6]}",
            origins=[],
            default_locale=locale,
        )

    def members_of(self, product: Product) -> dict[str, str]:
        """Two recipients (an owner, an admin) and a developer who is not one."""
        tag = uuid.uuid4().hex[:8]
        people = {
            "owner": f"owner-{tag}@example.com",
            "admin": f"admin-{tag}@example.com",
            "developer": f"dev-{tag}@example.com",
        }
        for role, address in people.items():
            self.members.add(product.id, address, role)
        return people


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub_settings(request, tmp_path_factory, mailbox: Mailbox, redis_url) -> Settings:
    workdir: Path = tmp_path_factory.mktemp("alerts-hub")
    database_url = (
        request.getfixturevalue("postgres_url")
        if request.param == "postgres"
        else f"sqlite:///{workdir / 'hub.db'}"
    )
    migrate(database_url)
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=f"hubtest-{uuid.uuid4().hex[:8]}",
        public_url="http://hub.test",
        jwt_private_keys_pem=generate_private_key_pem(),
        smtp_url=f"smtp://127.0.0.1:{mailbox.port}",
        argon2_memory_kib=1024,
        argon2_time_cost=1,
        hash_threads=1,
    )


@contextlib.asynccontextmanager
async def served(settings: Settings, mailbox: Mailbox) -> AsyncIterator[ServedHub]:
    members = ConsoleMembers()
    app = create_app(settings, alert_recipients=members)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, lifespan="on", interface="asgi3"
        )
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    try:
        yield ServedHub(app, port, members, mailbox)
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
async def hub(hub_settings: Settings, mailbox: Mailbox) -> AsyncIterator[ServedHub]:
    async with served(hub_settings, mailbox) as served_hub:
        yield served_hub


async def set_destinations(client: httpx.AsyncClient, sk: str, **settings: object) -> dict:
    answer = await client.patch("/api/v1/product", headers=bearer(sk), json=settings)
    assert answer.status_code == 200, answer.text
    return answer.json()["product"]


async def revoked_key(client: httpx.AsyncClient, sk: str) -> tuple[str, str]:
    """A restricted key, revoked: (its plaintext, its prefix)."""
    made = await client.post(
        "/api/v1/keys", headers=bearer(sk), json={"name": "ci", "scopes": ["keys:write"]}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    gone = await client.delete(f"/api/v1/keys/{key['id']}", headers=bearer(sk))
    assert gone.status_code == 204, gone.text
    return key["key"], key["key_prefix"]


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


async def settle(seconds: float = 1.0) -> None:
    """Time for a background send that should not happen to show up if it did."""
    await asyncio.sleep(seconds)


# -- abuse: a bad receiver, a burst, the secret --------------------------------------------


async def test_a_hanging_or_failing_slack_neither_delays_the_answer_nor_stops_the_email(
    hub: ServedHub, caplog
):
    hanging = AlertSink(delay=8)
    failing = AlertSink(status=500)
    try:
        product, keys = await hub.product()
        people = hub.members_of(product)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            sk = keys["sk_live"]
            await set_destinations(
                client, sk, alert_email=True, alert_slack_url=hanging.url + "/T0/B0/s3cr3t"
            )
            key, _ = await revoked_key(client, sk)
            started = time.monotonic()
            answer = await client.get("/api/v1/keys", headers=bearer(key))
            assert answer.status_code == 401
            # Well under the Slack post's own 5 s bound: it runs in the background.
            assert time.monotonic() - started < 3.0
            # The email arrives while the Slack receiver still hangs.
            await hub.mailbox.wait_for(people["owner"], kind=ALERT_MAIL, within=4)
            assert len(hanging.received) == 1

            await set_destinations(client, sk, alert_slack_url=failing.url + "/T0/B0/s3cr3t")
            key, _ = await revoked_key(client, sk)
            with caplog.at_level(logging.WARNING, logger="auth.alerts"):
                answer = await client.get("/api/v1/keys", headers=bearer(key))
                assert answer.status_code == 401
                await hub.mailbox.wait_for(people["admin"], count=2, kind=ALERT_MAIL)
                for _ in range(50):
                    if "answered 500" in caplog.text:
                        break
                    await asyncio.sleep(0.1)
        assert len(failing.received) == 1
        assert f"alert slack of product={product.slug} host=127.0.0.1 answered 500" in caplog.text
        assert "s3cr3t" not in caplog.text
    finally:
        hanging.close()
        failing.close()


async def test_a_burst_of_identical_alerts_gives_one_post_and_one_email_per_recipient(
    hub: ServedHub,
):
    sink = AlertSink()
    try:
        product, keys = await hub.product()
        people = hub.members_of(product)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            sk = keys["sk_live"]
            await set_destinations(client, sk, alert_email=True, alert_slack_url=sink.url)
            key, _ = await revoked_key(client, sk)
            answers = await asyncio.gather(
                *(client.get("/api/v1/keys", headers=bearer(key)) for _ in range(50))
            )
            assert {a.status_code for a in answers} == {401}
            await sink.wait_for_count(1)
            await hub.mailbox.wait_for(people["owner"], kind=ALERT_MAIL)
            await hub.mailbox.wait_for(people["admin"], kind=ALERT_MAIL)
            await settle()
        assert len(sink.received) == 1
        assert len(hub.mailbox.for_recipient(people["owner"], ALERT_MAIL)) == 1
        assert len(hub.mailbox.for_recipient(people["admin"], ALERT_MAIL)) == 1
        assert hub.mailbox.for_recipient(people["developer"]) == []  # not a recipient
    finally:
        sink.close()


async def test_no_message_carries_the_secret_nor_a_slack_mention(hub: ServedHub):
    sink = AlertSink()
    try:
        product, keys = await hub.product()
        people = hub.members_of(product)
        sk = keys["sk_live"]
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            await set_destinations(client, sk, alert_email=True, alert_slack_url=sink.url)
            revoked, _ = await revoked_key(client, sk)
            assert (await client.get("/api/v1/keys", headers=bearer(revoked))).status_code == 401
            # The live secret key from a "browser" whose Origin tries to ping the channel.
            browser = {**bearer(sk), "Origin": "https://x.test/<!channel><https://evil|ok>"}
            assert (await client.get("/api/v1/keys", headers=browser)).status_code == 401
            await sink.wait_for_count(2)
            await hub.mailbox.wait_for(people["owner"], count=2, kind=ALERT_MAIL)
        texts = [post["text"] for post in sink.received]
        mails = hub.mailbox.for_recipient(people["owner"], ALERT_MAIL)
        everything = texts + [mail_body(m) + subject(m) for m in mails]
        for text in everything:
            assert sk not in text and revoked not in text
            # Nor any piece of it past the prefix the alert may show.
            assert sk[16:28] not in text and revoked[16:28] not in text
        browser_post = next(t for t in texts if "secret_key_in_browser" in t)
        assert "<!channel>" not in browser_post and "&lt;!channel&gt;" in browser_post
        assert "<https://evil" not in browser_post
    finally:
        sink.close()


# -- delivery --------------------------------------------------------------------------------


async def test_a_revoked_key_is_told_to_slack_and_to_each_owner_and_admin(hub: ServedHub):
    sink = AlertSink()
    try:
        product, keys = await hub.product(locale="cs")
        people = hub.members_of(product)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            sk = keys["sk_live"]
            stored = await set_destinations(client, sk, alert_email=True, alert_slack_url=sink.url)
            assert stored["alert_email"] is True and stored["alert_slack_url"] == sink.url
            key, prefix = await revoked_key(client, sk)
            assert (await client.get("/api/v1/keys", headers=bearer(key))).status_code == 401
            post = (await sink.wait_for_count(1))[0]
            owner_mail = (await hub.mailbox.wait_for(people["owner"], kind=ALERT_MAIL))[0]
            admin_mail = (await hub.mailbox.wait_for(people["admin"], kind=ALERT_MAIL))[0]
            await settle(0.5)
        assert set(post) == {"text"}
        for text in (post["text"], mail_body(owner_mail), mail_body(admin_mail)):
            assert product.slug in text
            assert "revoked_key_used" in text
            assert prefix in text
            assert "127.0.0.1" in text  # the client's address
        title = MESSAGES["alert.event.revoked_key_used"]["cs"]
        assert subject(owner_mail) == MESSAGES["alert.subject"]["cs"].format(
            product=product.name, title=title
        )
        assert title in post["text"]  # Slack too speaks the product's language
        assert owner_mail["From"].endswith("<no-reply@localhost>")
        assert len(sink.received) == 1
        assert hub.mailbox.for_recipient(people["developer"]) == []
    finally:
        sink.close()


async def test_a_product_without_destinations_sends_nothing(hub: ServedHub):
    sink = AlertSink()
    try:
        quiet, quiet_keys = await hub.product()
        quiet_people = hub.members_of(quiet)
        slack_only, slack_keys = await hub.product()
        slack_people = hub.members_of(slack_only)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            await set_destinations(client, slack_keys["sk_live"], alert_slack_url=sink.url)
            for keys in (quiet_keys, slack_keys):
                key, _ = await revoked_key(client, keys["sk_live"])
                assert (await client.get("/api/v1/keys", headers=bearer(key))).status_code == 401
            await sink.wait_for_count(1)
            await settle()
            # Email turned on, then off again: nothing either.
            await set_destinations(client, quiet_keys["sk_live"], alert_email=True)
            await set_destinations(client, quiet_keys["sk_live"], alert_email=False)
            key, _ = await revoked_key(client, quiet_keys["sk_live"])
            assert (await client.get("/api/v1/keys", headers=bearer(key))).status_code == 401
            await settle()
        assert len(sink.received) == 1 and slack_only.slug in sink.received[0]["text"]
        for people in (quiet_people, slack_people):
            for address in people.values():
                assert hub.mailbox.for_recipient(address) == []
        assert quiet.id not in hub.members.asked and slack_only.id not in hub.members.asked
    finally:
        sink.close()


async def test_the_consoles_setter_judges_the_url_and_is_seen_at_once(hub: ServedHub):
    """`ProductAdmin.set_alert_destinations` is what the console's pages call: it judges the
    Slack URL as the API does and every cached copy of the product is forgotten."""
    sink = AlertSink()
    try:
        product, keys = await hub.product()
        admin = app_services(hub.app).auth.product_admin
        with pytest.raises(BlockedTarget):
            await admin.set_alert_destinations(
                product, email=None, slack_url="https://10.0.0.1/hook", strict=True
            )
        with pytest.raises(ValueError):
            await admin.set_alert_destinations(
                product, email=None, slack_url="http://hooks.slack.com/x", strict=True
            )
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            sk = keys["sk_live"]
            # The live key's lookup caches it with the product as it was (no destinations).
            assert (await client.get("/api/v1/keys", headers=bearer(sk))).status_code == 200
            updated = await admin.set_alert_destinations(
                product, email=None, slack_url=sink.url, strict=False
            )
            assert updated.alert_slack_url == sink.url and updated.alert_email is False
            browser = {**bearer(sk), "Origin": "https://app.example.com"}
            assert (await client.get("/api/v1/keys", headers=browser)).status_code == 401
            await sink.wait_for_count(1)
            cleared = await admin.set_alert_destinations(
                product, email=True, slack_url="", strict=False
            )
            assert cleared.alert_slack_url is None and cleared.alert_email is True
    finally:
        sink.close()
