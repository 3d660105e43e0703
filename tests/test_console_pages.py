"""The console's pages against real hubs (SQLite and PostgreSQL): a product created in the
console, its origins edited and the public API's origin check following at once, settings
refused when malformed, an invitation mailed and accepted, keys rotated and revoked with the
old key refused by the API at once, and every change in the audit log, also through
`GET /api/v1/audit_log` (the live secret key of this product only)."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from console.web import TEMPLATES_DIR
from tests.console_support import (
    accept,
    console_email,
    create_admin,
    create_console_product,
    invite,
    post_form,
    sign_in,
)
from tests.support import HubServer, bearer, create_product, free_port, mail_body, vanish_mid_body

COOKIE = "hub_console_session"


def _slug() -> str:
    return f"c-{uuid.uuid4().hex[:8]}"


async def _login_from(client: httpx.AsyncClient, slug: str, origin: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login",
        headers={"X-Product-Slug": slug, "Origin": origin},
        json={"email": "nobody@example.com", "password": "whatever-password"},
    )


async def test_a_product_made_in_the_console_and_its_origins_edited(console, client):
    slug = _slug()
    await create_console_product(console, slug, origins="https://App.Example.com/\n\n")
    page = await console.get(f"/console/products/{slug}")
    assert page.status_code == 200
    assert "https://app.example.com" in page.text  # normalized
    assert 'id="role">owner' in page.text
    assert (await _login_from(client, slug, "https://app.example.com")).status_code == 401
    assert (await _login_from(client, slug, "https://new.example.com")).status_code == 403

    saved = await post_form(
        console, f"/console/products/{slug}/origins", {"origins": "https://new.example.com"}
    )
    assert saved.status_code == 303
    # At once: the API answers the new origin and refuses the old one.
    assert (await _login_from(client, slug, "https://new.example.com")).status_code == 401
    assert (await _login_from(client, slug, "https://app.example.com")).status_code == 403


@pytest.mark.parametrize(
    "origins",
    ["https://*.example.com", "https://app.example.com/path", "javascript:alert(1)", "ftp://x.y"],
)
async def test_malformed_origins_are_refused_and_nothing_changes(console, origins):
    slug = _slug()
    await create_console_product(console, slug, origins="https://kept.example.com")
    refused = await post_form(console, f"/console/products/{slug}/origins", {"origins": origins})
    assert refused.status_code == 422
    assert 'id="settings-error"' in refused.text
    assert "https://kept.example.com" in (await console.get(f"/console/products/{slug}")).text


async def test_odd_form_input_answers_4xx_never_5xx(console):
    slug = _slug()
    await create_console_product(console, slug)
    path = f"/console/products/{slug}/settings"
    token = re.search(r'name="csrf_token" value="([^"]+)"', (await console.get(path[:-9])).text)
    assert token
    for body in (
        f"csrf_token={token.group(1)}&mail_from_name=%00",
        f"csrf_token={token.group(1)}&mail_from_name=%ff%fe",
        f"csrf_token={token.group(1)}&" + "a=b&" * 500,
        "%",
    ):
        answer = await console.post(
            path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert 400 <= answer.status_code < 500, (body[:40], answer.status_code)
    json_body = await console.post(path, json={"csrf_token": token.group(1)})
    assert json_body.status_code == 415


async def test_mail_branding_link_templates_and_webhook(console, hub):
    slug = _slug()
    await create_console_product(console, slug)
    fields = {
        "default_locale": "cs",
        "mail_from_name": "Acme <Support>",
        "mail_from_address": "Support@Acme.example",
        "reset_url_template": "https://app.acme.example/reset?t={token}",
        "verify_url_template": "",
        "alert_webhook_url": "https://hooks.acme.example/alerts",
    }
    saved = await post_form(console, f"/console/products/{slug}/settings", fields)
    assert saved.status_code == 303, saved.text
    page = (await console.get(f"/console/products/{slug}")).text
    assert "Acme &lt;Support&gt;" in page  # escaped
    assert "support@acme.example" in page
    assert "<option selected>cs</option>" in page
    for bad in (
        {"default_locale": "xx"},
        {"mail_from_address": "not-an-address"},
        {"reset_url_template": "https://app.acme.example/reset"},  # no {token}
        {"alert_webhook_url": "ftp://hooks.example"},
        # A line break in a mail header failed every mail of the product, silently.
        {"mail_from_name": "Evil\r\nBcc: x@y.example"},
        # Accepted, then unsendable at every alert.
        {"alert_webhook_url": "https://hooks.acme.example/a\r\nX-Evil: 1"},
        {"alert_webhook_url": "https://hooks.acme.example/a b"},
    ):
        refused = await post_form(console, f"/console/products/{slug}/settings", {**fields, **bad})
        assert refused.status_code == 422, bad


async def test_invitation_is_mailed_accepted_once_and_makes_a_member(console, hub, mailbox):
    slug = _slug()
    await create_console_product(console, slug)
    email = console_email("dev")
    link = await invite(console, slug, email, "developer")
    [mail] = await mailbox.wait_for(email, kind="console_invitation")
    assert link in mail_body(mail)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as invitee:
        short = await accept(invitee, link, "short")
        assert short.status_code == 422
        joined = await accept(invitee, link)
        assert joined.status_code == 303
        assert COOKIE in invitee.cookies
        products = await invitee.get("/console/products")
        assert f'id="product-{slug}"' in products.text
        again = await invitee.get(link)
        assert again.status_code == 404
    members = (await console.get(f"/console/products/{slug}/members")).text
    assert email in members and "<td>developer</td>" in members


def _key_id(page: str, env: str, kind: str) -> str:
    match = re.search(rf'<tr id="key-(\d+)">\s*<td>{env}</td><td>{kind}</td>', page)
    assert match, page
    return match.group(1)


def _secret(page: str) -> str:
    match = re.search(r'<code id="secret-value">([^<]+)</code>', page)
    assert match, page
    return match.group(1)


async def test_rotating_a_key_in_the_console_stops_the_old_one_at_once(console, client, hub):
    product = create_product(hub)
    slug, old = product["slug"], product["sk_live"]
    assert (await client.get("/api/v1/product", headers=bearer(old))).status_code == 200
    keys_page = await console.get(f"/console/products/{slug}/keys")
    assert old not in keys_page.text and old[:12] in keys_page.text  # the prefix only
    key_id = _key_id(keys_page.text, "live", "secret")
    rotated = await post_form(console, f"/console/products/{slug}/keys/{key_id}/rotate")
    assert rotated.status_code == 201
    assert rotated.headers["cache-control"] == "no-store"
    new = _secret(rotated.text)
    assert new.startswith("sk_live_") and new != old
    assert (await client.get("/api/v1/product", headers=bearer(old))).status_code == 401
    assert (await client.get("/api/v1/product", headers=bearer(new))).status_code == 200
    assert new not in (await console.get(f"/console/products/{slug}/keys")).text


async def test_restricted_keys_created_and_revoked(console, client, hub):
    product = create_product(hub)
    slug = product["slug"]
    created = await post_form(
        console,
        f"/console/products/{slug}/keys",
        {"name": "reader", "env": "live", "scope:users:read": "1"},
    )
    assert created.status_code == 201
    restricted = _secret(created.text)
    assert restricted.startswith("rk_live_")
    assert (await client.get("/api/v1/users/1", headers=bearer(restricted))).status_code in (
        200,
        404,
    )
    refused = await client.post(
        "/api/v1/notifications",
        headers=bearer(restricted),
        json={"title": "x", "recipients": [{"user_id": 1}]},
    )
    assert refused.status_code == 403  # not in its scopes
    key_id = _key_id(
        (await console.get(f"/console/products/{slug}/keys")).text, "live", "restricted"
    )
    revoked = await post_form(console, f"/console/products/{slug}/keys/{key_id}/revoke")
    assert revoked.status_code == 200
    assert (await client.get("/api/v1/users/1", headers=bearer(restricted))).status_code == 401
    secret_id = _key_id(revoked.text, "live", "secret")
    kept = await post_form(console, f"/console/products/{slug}/keys/{secret_id}/revoke")
    assert kept.status_code == 409  # secret keys are rotated, not revoked


async def test_every_change_is_in_the_audit_log_and_its_api(console, client, hub, admin):
    product = create_product(hub)
    other = create_product(hub)
    slug = product["slug"]
    await post_form(console, f"/console/products/{slug}/origins", {"origins": "https://a.example"})
    await invite(console, slug, console_email("viewer"), "viewer")
    key_id = _key_id((await console.get(f"/console/products/{slug}/keys")).text, "test", "secret")
    rotated = _secret(
        (await post_form(console, f"/console/products/{slug}/keys/{key_id}/rotate")).text
    )

    page = (await console.get(f"/console/products/{slug}/audit")).text
    for action in ("product.origins", "member.invite", "key.rotate"):
        assert f"<td>{action}</td>" in page
    assert admin in page

    answer = await client.get("/api/v1/audit_log", headers=bearer(product["sk_live"]))
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entries"]
    assert [e["action"] for e in entries] == ["key.rotate", "member.invite", "product.origins"]
    assert entries[0]["actor"]["email"] == admin
    assert entries[0]["ip"] == "127.0.0.1"
    assert entries[0]["user_agent"].startswith("python-httpx")
    assert entries[2]["detail"]["after"] == ["https://a.example"]
    assert rotated not in answer.text and product["sk_test"] not in answer.text  # prefixes only
    assert entries[0]["target"] == product["sk_test"][: len(entries[0]["target"])]
    first = await client.get(
        "/api/v1/audit_log", params={"limit": 2}, headers=bearer(product["sk_live"])
    )
    assert len(first.json()["entries"]) == 2
    rest = await client.get(
        "/api/v1/audit_log",
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=bearer(product["sk_live"]),
    )
    assert [e["action"] for e in rest.json()["entries"]] == ["product.origins"]
    assert rest.json()["next_cursor"] is None

    foreign = await client.get("/api/v1/audit_log", headers=bearer(other["sk_live"]))
    assert foreign.status_code == 200 and foreign.json()["entries"] == []
    test_key = await client.get("/api/v1/audit_log", headers=bearer(rotated))  # the new sk_test
    assert test_key.status_code == 403
    async with httpx.AsyncClient(
        base_url=hub.url, cookies={COOKIE: console.cookies[COOKIE]}
    ) as only_cookie:
        assert (await only_cookie.get("/api/v1/audit_log")).status_code == 401


async def test_pages_carry_a_strict_csp_and_no_inline_script(console):
    answer = await console.get("/console/products")
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "unsafe-inline" not in csp
    assert answer.headers["x-frame-options"] == "DENY"
    assert '<meta name="viewport"' in answer.text
    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text()
        assert "<script" not in text and not re.search(r"\s(style|on[a-z]+)=", text), template
    css = await console.get("/console/static/console.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


async def test_product_names_are_escaped(console):
    slug = _slug()
    await create_console_product(console, slug, name="<script>alert(1)</script>")
    page = (await console.get("/console/products")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_an_unknown_role_and_another_products_invitation_are_refused(console, hub):
    mine, theirs = _slug(), _slug()
    await create_console_product(console, mine)
    await create_console_product(console, theirs)
    refused = await post_form(
        console,
        f"/console/products/{mine}/members/invite",
        {"email": console_email("x"), "role": "superuser"},
    )
    assert refused.status_code == 422 and "Not a role." in refused.text
    await invite(console, theirs, console_email("y"), "viewer")
    page = (await console.get(f"/console/products/{theirs}/members")).text
    [invitation_id] = re.findall(r"/invitations/(\d+)/withdraw", page)
    # Their invitation through my product's path: not found, and it stays.
    crossed = await post_form(
        console, f"/console/products/{mine}/invitations/{invitation_id}/withdraw"
    )
    assert crossed.status_code == 404
    assert (
        f"/invitations/{invitation_id}/withdraw"
        in (await console.get(f"/console/products/{theirs}/members")).text
    )


async def test_an_invitation_whose_mail_fails_still_shows_its_link(tmp_path):
    # Found by an outside review: with the mail server down the form answered 503 and left an
    # invitation nobody had the link of.
    dead_smtp = free_port()  # nothing listens there
    server = HubServer(tmp_path, smtp_port=dead_smtp)
    server.start()
    try:
        admin = console_email("admin")
        create_admin(server, admin)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as console:
            await sign_in(console, admin)
            slug = _slug()
            await create_console_product(console, slug)
            link = await invite(console, slug, console_email("dev"), "developer")
            assert "/console/invitations/inv_" in link
            page = (await console.get(f"/console/products/{slug}/audit")).text
            assert "member.invite" in page
        assert "Traceback" not in server.logs()
    finally:
        server.stop()


async def test_a_form_cut_off_by_a_vanishing_client_is_not_an_error(hub):
    # Found by an outside review: each cut-off form logged two tracebacks (a cheap log flood).
    start = len(hub.logs())
    for _ in range(3):
        await vanish_mid_body(
            hub.port,
            b"POST /console/sign-in HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            b"email=a",
        )
    await asyncio.sleep(0.5)
    async with httpx.AsyncClient(base_url=hub.url) as client:
        assert (await client.get("/console/sign-in")).status_code == 200
    later = hub.logs()[start:]
    assert "Traceback" not in later and "unhandled error" not in later


async def test_sign_ins_are_in_the_deployment_audit_log_for_console_admins_only(console, hub):
    # Sign-ins and sign-outs belong to no product, so no product's log shows them.
    slug = _slug()
    await create_console_product(console, slug)
    everything = await console.get("/console/audit")
    assert everything.status_code == 200
    assert "console.sign_in" in everything.text and "product.create" in everything.text
    link = await invite(console, slug, console_email("owner"), "owner")
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as owner:
        assert (await accept(owner, link)).status_code == 303
        refused = await owner.get("/console/audit")
        assert refused.status_code == 403  # an owner of one product, not a console admin
        assert (await owner.get(f"/console/products/{slug}/audit")).status_code == 200
