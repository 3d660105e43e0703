"""The console's operating pages, against real hub processes sharing PostgreSQL and Redis:
live status summed over every process (and a process that dies drops out after its
snapshot's TTL), the notification log and "send a test notification" (stored and delivered
to the user's open socket through the publish path), and the alert destinations chosen on
the settings form, down to the email that reaches the owner (and not the developer).

Abuse first: a viewer cannot send, another product's user is no recipient (nothing stored),
odd input answers 4xx pages, an internal Slack URL is refused in production, and one
product's status never shows another's numbers."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path

import httpx
import pytest

from auth.products import get_product_by_slug
from console.alert_recipients import ConsoleAlertRecipients
from console.tables import console_accounts
from infra.db import connect_database, utcnow
from tests.console_support import (
    accept,
    console_email,
    create_admin,
    csrf_of,
    invite,
    page_csrf,
    sign_in_over_plain_http,
)
from tests.support import (
    HubServer,
    Mailbox,
    api_user,
    bearer,
    cable,
    create_product,
    production_hub,
    publish,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ALERT_MAIL = "security_alert"


@pytest.fixture(scope="module")
def hubs(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_url: str,
    redis_url: str | None,
    mailbox: Mailbox,
) -> Iterator[tuple[HubServer, HubServer]]:
    """Two hub processes of one deployment: the same database, Redis prefix and signing key."""
    if redis_url is None:
        pytest.skip("the live status across processes needs Redis (REDIS_URL)")
    first = HubServer(
        workdir=tmp_path_factory.mktemp("ops-a"),
        database_url=postgres_url,
        redis_url=redis_url,
        smtp_port=mailbox.port,
    )
    first.start()
    second = first.twin(tmp_path_factory.mktemp("ops-b"))
    second.start()
    try:
        yield first, second
    finally:
        second.stop()
        first.stop()


@pytest.fixture(scope="module")
def hub(hubs: tuple[HubServer, HubServer]) -> HubServer:
    """The first process: the pages are used through it (and conftest's `admin` and `console`
    sign in to it)."""
    return hubs[0]


@pytest.fixture
async def api(hub: HubServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        yield client


async def member(hub: HubServer, console: httpx.AsyncClient, slug: str, role: str):
    """A signed-in client of a new console account with `role` on the product, and its email."""
    email = console_email(role)
    link = await invite(console, slug, email, role)
    client = httpx.AsyncClient(base_url=hub.url, timeout=30)
    accepted = await accept(client, link)
    assert accepted.status_code == 303, accepted.text
    return client, email


async def post(
    client: httpx.AsyncClient, path: str, fields: dict[str, str], page: str = "/console/products"
) -> httpx.Response:
    token = await page_csrf(client, page)
    return await client.post(path, data={"csrf_token": token, **fields})


async def send_test(client: httpx.AsyncClient, slug: str, **fields: str) -> httpx.Response:
    return await post(client, f"/console/products/{slug}/notifications/test", fields)


async def log_ids(console: httpx.AsyncClient, slug: str, env: str = "live") -> list[int]:
    page = await console.get(f"/console/products/{slug}/notifications?env={env}")
    assert page.status_code == 200, page.text
    return [int(n) for n in re.findall(r'<tr id="notification-(\d+)">', page.text)]


# -- abuse ----------------------------------------------------------------------------------


async def test_a_viewer_cannot_send_a_test_notification(hub, console, api):
    product = create_product(hub)
    slug = product["slug"]
    user_id, _ = await api_user(api, product["sk_live"])
    viewer, _ = await member(hub, console, slug, "viewer")
    async with aclosing(viewer):
        log = await viewer.get(f"/console/products/{slug}/notifications")
        assert log.status_code == 200 and 'id="test-form"' not in log.text
        refused = await send_test(viewer, slug, recipient=str(user_id), title="Hi")
        assert refused.status_code == 403
        assert 'id="error-status">403' in refused.text
    assert await log_ids(console, slug) == []


async def test_another_products_user_is_no_recipient_and_nothing_is_stored(hub, console, api):
    mine, theirs = create_product(hub), create_product(hub)
    their_email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    their_id, _ = await api_user(api, theirs["sk_live"], email=their_email)
    test_id, _ = await api_user(api, mine["sk_test"])  # mine, but the test environment
    for recipient in (str(their_id), their_email, str(test_id), "0", "99999999999", "nobody"):
        answer = await send_test(console, mine["slug"], recipient=recipient, title="Leak?")
        assert answer.status_code == 422, (recipient, answer.status_code)
        assert 'id="test-error"' in answer.text
    assert await log_ids(console, mine["slug"]) == []
    assert await log_ids(console, theirs["slug"]) == []
    # Filtering the log by another product's user shows nothing of theirs either.
    await publish(api, theirs["sk_live"], their_id, title="theirs")
    filtered = await console.get(
        f"/console/products/{mine['slug']}/notifications?recipient={their_email}"
    )
    assert filtered.status_code == 200 and "theirs" not in filtered.text


@pytest.mark.parametrize(
    "query",
    [
        "?env=prod",
        "?env=%00",
        "?before=NaN",
        "?before=-1",
        "?before=99999999999999999999999",
        "?recipient=%00",
        "?recipient=" + "x" * 400,
    ],
)
async def test_odd_log_queries_answer_4xx_pages(hub, console, query):
    product = create_product(hub)
    answer = await console.get(f"/console/products/{product['slug']}/notifications{query}")
    assert 400 <= answer.status_code < 500, (query, answer.status_code)


async def test_test_notifications_past_the_budget_answer_429_and_send_nothing(hub, console, api):
    flooded, other = create_product(hub), create_product(hub)
    user_id, _ = await api_user(api, flooded["sk_live"])
    for _ in range(12):  # refused forms spend nothing of the budget
        refused = await send_test(console, flooded["slug"], recipient=str(user_id), title="")
        assert refused.status_code == 422
        unknown = await send_test(console, flooded["slug"], recipient="nobody@x.y", title="t")
        assert unknown.status_code == 422
    for n in range(10):  # HUB_RATE_TEST_NOTIFICATION's default: 10 a minute
        sent = await send_test(console, flooded["slug"], recipient=str(user_id), title=f"t{n}")
        assert sent.status_code == 201, sent.text
    refused = await send_test(console, flooded["slug"], recipient=str(user_id), title="t10")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert 'id="error-status">429' in refused.text
    assert len(await log_ids(console, flooded["slug"])) == 10
    # The budget is the product environment's: the test environment and another product
    # still have theirs.
    test_user, _ = await api_user(api, flooded["sk_test"])
    in_test = await send_test(
        console, flooded["slug"], recipient=str(test_user), title="t", env="test"
    )
    assert in_test.status_code == 201, in_test.text
    other_user, _ = await api_user(api, other["sk_live"])
    elsewhere = await send_test(console, other["slug"], recipient=str(other_user), title="t")
    assert elsewhere.status_code == 201, elsewhere.text


async def test_odd_test_notification_forms_answer_4xx_pages(hub, console, api):
    product = create_product(hub)
    slug = product["slug"]
    user_id, _ = await api_user(api, product["sk_live"])
    odd = [
        {"recipient": str(user_id), "title": ""},
        {"recipient": str(user_id), "title": "x" * 201},
        {"recipient": str(user_id), "title": "ok", "message": "y" * 5001},
        {"recipient": "x" * 10_000, "title": "ok"},
        {"recipient": "NaN", "title": "ok"},
        {"recipient": "1e309", "title": "ok"},
        {"recipient": str(user_id), "title": "ok", "env": "prod"},
    ]
    for fields in odd:
        answer = await send_test(console, slug, **fields)
        assert 400 <= answer.status_code < 500, (fields, answer.status_code)
    nul = await send_test(console, slug, recipient=str(user_id), title="a\x00b")
    assert nul.status_code == 400
    big = await console.post(
        f"/console/products/{slug}/notifications/test",
        content=b"title=" + b"x" * 100_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    surrogate = await console.post(  # an unpaired surrogate, as UTF-8 would spell it
        f"/console/products/{slug}/notifications/test",
        content=b"title=%ED%A0%80&recipient=" + str(user_id).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert surrogate.status_code == 400
    assert await log_ids(console, slug) == []


async def test_the_status_of_another_product_is_not_visible(hub, console, api):
    mine, theirs = create_product(hub), create_product(hub)
    # A member of `theirs` only, with live sockets and deliveries there.
    owner, _ = await member(hub, console, theirs["slug"], "owner")
    user_id, token = await api_user(api, theirs["sk_live"])
    socket = await cable(hub.url, token)
    try:
        await publish(api, theirs["sk_live"], user_id, title="busy")
        await socket.next_message()
        async with aclosing(owner):
            for path in ("/status", "/status.json", "/notifications"):
                refused = await owner.get(f"/console/products/{mine['slug']}{path}")
                assert refused.status_code == 403, path
        quiet = (await console.get(f"/console/products/{mine['slug']}/status.json")).json()
        assert quiet["connections"] == 0
        assert quiet["deliveries_per_second"] == 0
        assert quiet["latency_ms"] == {"p50": None, "p99": None}
    finally:
        await socket.close()


async def test_an_internal_slack_url_is_refused_in_production(tmp_path: Path):
    with production_hub(tmp_path) as hub:
        product = create_product(hub)
        email = console_email("admin")
        create_admin(hub, email)
        async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
            _, signed = await sign_in_over_plain_http(client, email)
            assert signed.status_code == 303, signed.text
            cookie = {"Cookie": signed.headers["set-cookie"].split(";")[0]}
            path = f"/console/products/{product['slug']}"
            page = await client.get(path, headers=cookie)
            for url in (
                "https://127.0.0.1/services/T0/B0/x",
                "https://10.0.0.8/hook",
                "https://localhost/hook",
                "http://hooks.slack.com/services/T0/B0/x",  # not https
            ):
                answer = await client.post(
                    path + "/settings",
                    headers=cookie,
                    data={
                        "csrf_token": csrf_of(page.text),
                        "default_locale": "en",
                        "alert_email": "1",
                        "alert_slack_url": url,
                    },
                )
                assert answer.status_code == 422, (url, answer.status_code)
                assert 'id="settings-error"' in answer.text and "Slack" in answer.text
            after = await client.get(path, headers=cookie)
            assert 'id="alert_email" name="alert_email" value="1" checked' not in after.text
            assert 'id="alert_slack_url" name="alert_slack_url" maxlength="2000" value=""' in (
                after.text
            )


# -- the happy paths ------------------------------------------------------------------------


async def test_a_test_notification_is_stored_logged_and_delivered_to_the_open_socket(
    hub, console, api
):
    product = create_product(hub)
    slug = product["slug"]
    email = f"u-{uuid.uuid4().hex[:8]}@example.com"
    user_id, token = await api_user(api, product["sk_live"], email=email)
    other_id, _ = await api_user(api, product["sk_live"])
    await publish(api, product["sk_live"], other_id, title="for someone else")
    socket = await cable(hub.url, token)
    try:
        sent = await send_test(
            console, slug, recipient=email.upper(), title="Test ping", message="from the console"
        )
        assert sent.status_code == 201, sent.text
        assert 'id="notice"' in sent.text
        message = await socket.next_message("new_notification")
        assert message["notification"]["title"] == "Test ping"
        assert message["notification"]["message"] == "from the console"
        by_id = await send_test(console, slug, recipient=str(user_id), title="Second")
        assert by_id.status_code == 201
        assert (await socket.next_message("new_notification"))["notification"]["title"] == "Second"
    finally:
        await socket.close()
    log = await console.get(f"/console/products/{slug}/notifications")
    assert log.text.index("Second") < log.text.index("Test ping")  # newest first
    assert email in log.text and "for someone else" in log.text
    mine = await console.get(f"/console/products/{slug}/notifications?recipient={email}")
    assert "Test ping" in mine.text and "for someone else" not in mine.text
    assert "live" in (await console.get(f"/console/products/{slug}/notifications")).text
    assert await log_ids(console, slug, "test") == []
    audit = await console.get(f"/console/products/{slug}/audit")
    assert audit.text.count("notification.test") == 2


async def test_the_log_is_paginated_by_cursor(hub, console, api):
    product = create_product(hub)
    user_id, _ = await api_user(api, product["sk_live"])
    for i in range(55):
        await publish(api, product["sk_live"], user_id, title=f"n{i}")
    first = await console.get(f"/console/products/{product['slug']}/notifications")
    ids = [int(n) for n in re.findall(r'<tr id="notification-(\d+)">', first.text)]
    assert len(ids) == 50 and ids == sorted(ids, reverse=True)
    older = re.search(r'href="([^"]+)" id="older"', first.text)
    assert older
    second = await console.get(
        f"/console/products/{product['slug']}/notifications" + older.group(1).replace("&amp;", "&")
    )
    rest = [int(n) for n in re.findall(r'<tr id="notification-(\d+)">', second.text)]
    assert len(rest) == 5 and max(rest) < min(ids)


async def status_until(client: httpx.AsyncClient, slug: str, holds, within: float = 15) -> dict:
    """Poll the JSON twin until `holds(status)`; fails with the last answer after `within`."""
    deadline = time.monotonic() + within
    while True:
        answer = await client.get(f"/console/products/{slug}/status.json")
        assert answer.status_code == 200, answer.text
        status = answer.json()
        if holds(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(status)
        await asyncio.sleep(0.5)


async def test_live_status_sums_every_process_and_a_dead_one_drops_out(hubs, console, api):
    hub, hub_b = hubs
    product = create_product(hub)
    slug, sk = product["slug"], product["sk_live"]
    users = [await api_user(api, sk) for _ in range(3)]
    # One socket on A, two on B.
    sockets = [
        await cable(hub.url, users[0][1]),
        await cable(hub_b.url, users[1][1]),
        await cable(hub_b.url, users[2][1]),
    ]
    try:
        for _ in range(5):
            await publish(api, sk, [u for u, _ in users], title="tick")
            for socket in sockets:
                await socket.next_message("new_notification")
        status = await status_until(
            console,
            slug,
            lambda s: (
                s["connections"] == 3
                and len(s["processes"]) == 2
                and s["deliveries_per_second"] * 60 >= 15 * 0.9
            ),
        )
        assert status["latency_ms"]["p50"] is not None and status["latency_ms"]["p50"] > 0
        assert status["latency_ms"]["p99"] >= status["latency_ms"]["p50"]
        assert sorted(p["connections"] for p in status["processes"]) == [1, 2]
        assert status["newest_snapshot_at"]
        page = await console.get(f"/console/products/{slug}/status")
        assert page.status_code == 200
        assert 'id="status-connections">3<' in page.text
        assert '<meta http-equiv="refresh" content="5">' in page.text
        assert page.text.count('<tr id="process-') == 2
        # Another product sees none of it.
        other = create_product(hub)
        quiet = (await console.get(f"/console/products/{other['slug']}/status.json")).json()
        assert quiet["connections"] == 0 and quiet["deliveries_per_second"] == 0
        # B dies without a word: its snapshot lapses and its sockets stop counting.
        assert hub_b.process is not None
        hub_b.process.send_signal(signal.SIGKILL)
        hub_b.process.wait()
        started = time.monotonic()
        alone = await status_until(console, slug, lambda s: len(s["processes"]) == 1, within=15)
        assert alone["connections"] == 1
        assert time.monotonic() - started < 10
    finally:
        for socket in sockets:
            try:
                await asyncio.wait_for(socket.close(), 2)
            except Exception:
                pass


async def test_alert_destinations_on_the_settings_form_mail_the_owner_only(
    hub, console, api, mailbox
):
    product = create_product(hub)
    slug, sk = product["slug"], product["sk_live"]
    owner, owner_email = await member(hub, console, slug, "owner")
    developer, developer_email = await member(hub, console, slug, "developer")
    async with aclosing(owner), aclosing(developer):
        fields = {"default_locale": "en", "alert_email": "1", "alert_slack_url": ""}
        refused = await post(
            developer, f"/console/products/{slug}/settings", fields, f"/console/products/{slug}"
        )
        assert refused.status_code == 403
        saved = await post(
            owner, f"/console/products/{slug}/settings", fields, f"/console/products/{slug}"
        )
        assert saved.status_code == 303, saved.text
        page = await owner.get(f"/console/products/{slug}")
        assert 'id="alert_email" name="alert_email" value="1" checked' in page.text
    audit = await console.get(f"/console/products/{slug}/audit")
    assert "product.settings" in audit.text
    made = await api.post(
        "/api/v1/keys", headers=bearer(sk), json={"name": "ci", "scopes": ["keys:write"]}
    )
    assert made.status_code == 201, made.text
    key = made.json()
    gone = await api.delete(f"/api/v1/keys/{key['id']}", headers=bearer(sk))
    assert gone.status_code == 204
    before = len(mailbox.for_recipient(owner_email, ALERT_MAIL))
    assert (await api.get("/api/v1/keys", headers=bearer(key["key"]))).status_code == 401
    await mailbox.wait_for(owner_email, before + 1, kind=ALERT_MAIL)
    await asyncio.sleep(1)
    assert mailbox.for_recipient(developer_email, ALERT_MAIL) == []


async def test_a_slack_url_is_saved_and_cleared_from_the_settings_form(hub, console):
    product = create_product(hub)
    path = f"/console/products/{product['slug']}"
    url = "https://hooks.example.com/services/T0/B0/abc"
    fields = {"default_locale": "en", "alert_slack_url": url}
    assert (await post(console, path + "/settings", fields, path)).status_code == 303
    page = (await console.get(path)).text
    # A Slack webhook URL is a secret: the page says it is set and never shows it back.
    assert 'id="alert-slack-set"' in page and "services/T0/B0/abc" not in page
    bad = await post(console, path + "/settings", {**fields, "alert_slack_url": "ftp://x"}, path)
    assert bad.status_code == 422 and "Slack" in bad.text
    assert "services/T0/B0/abc" not in bad.text
    kept = {**fields, "alert_slack_url": ""}  # saving other settings keeps the one set
    assert (await post(console, path + "/settings", kept, path)).status_code == 303
    assert 'id="alert-slack-set"' in (await console.get(path)).text
    removed = {**kept, "alert_slack_remove": "1"}
    assert (await post(console, path + "/settings", removed, path)).status_code == 303
    assert 'id="alert-slack-set"' not in (await console.get(path)).text


async def test_without_a_session_the_ops_pages_send_the_browser_to_sign_in(hub):
    product = create_product(hub)
    async with httpx.AsyncClient(base_url=hub.url) as anonymous:
        for path in ("/status", "/status.json", "/notifications"):
            answer = await anonymous.get(f"/console/products/{product['slug']}{path}")
            assert answer.status_code == 303, path
            assert answer.headers["location"] == "/console/sign-in"
        posted = await anonymous.post(
            f"/console/products/{product['slug']}/notifications/test", data={"title": "x"}
        )
        assert posted.status_code == 303


async def test_alert_recipients_are_the_enabled_owners_and_admins(
    hub, admin, console, postgres_url
):
    product = create_product(hub)
    slug = product["slug"]
    people = {}
    for role in ("owner", "admin", "developer", "viewer"):
        client, people[role] = await member(hub, console, slug, role)
        await client.aclose()
    db = connect_database(postgres_url)
    await db.connect()
    try:
        found = await get_product_by_slug(db, slug)
        assert found is not None
        recipients = ConsoleAlertRecipients(db)
        assert await recipients.alert_emails(found.id) == [people["owner"], people["admin"]]
        await db.execute(
            console_accounts.update()
            .where(console_accounts.c.email == people["owner"])
            .values(disabled_at=utcnow())
        )
        assert await recipients.alert_emails(found.id) == [people["admin"]]
        # A product nobody is a member of (made with the CLI, say): its console admins.
        lonely = await get_product_by_slug(db, create_product(hub)["slug"])
        assert lonely is not None
        fallback = await recipients.alert_emails(lonely.id)
        assert admin in fallback and people["admin"] not in fallback
    finally:
        await db.disconnect()
