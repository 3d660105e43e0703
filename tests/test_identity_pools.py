"""Tenant isolation: a user identity belongs to one identity pool and one environment.

By default every product is its own pool, so no credential of one product reads, links,
changes or mails another product's users, and no answer tells whether an email exists
elsewhere. Products created into one named pool share log-ins; there an identity nobody has
proven is never handed from one product to another (the "pre-hijacked accounts" defences).
All against real hub processes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable

import httpx

from tests.support import (
    PASSWORD,
    CableClient,
    bearer,
    cable,
    create_product,
    error_code,
    login,
    product_headers,
    publish,
    register,
    reset_through_mail,
    reset_with_mailed_link,
)

ATTACKER_PASSWORD = "AttackerPass1!"
OWNER_PASSWORD = "OwnerPass456!"


def new_email(label: str = "victim") -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}@corp.example"


async def upsert(client: httpx.AsyncClient, secret_key: str, **fields: str) -> httpx.Response:
    return await client.post("/api/v1/users", headers=bearer(secret_key), json=fields)


async def titles(client: httpx.AsyncClient, access_token: str) -> list[str]:
    response = await client.get("/api/v1/notifications", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    return [n["title"] for n in response.json()["notifications"]]


# -- separate pools (the default) ----------------------------------------------------------


async def test_a_backend_upsert_never_links_another_products_identity(hub, client):
    """Reproduction 1: an identity made on one product with the attacker's password is not
    what another product's backend gets for that email."""
    demo, beta = create_product(hub), create_product(hub)
    victim = new_email()
    squatted = await register(client, victim, password=ATTACKER_PASSWORD, product=demo["slug"])

    linked = await upsert(client, beta["sk_live"], external_id="crm-victim", email=victim)
    assert linked.status_code == 201, linked.text
    beta_user = linked.json()["user"]["id"]
    assert beta_user != squatted["user"]["id"]
    await publish(client, beta["sk_live"], beta_user, title="Your payslip")

    attempt = await login(client, victim, ATTACKER_PASSWORD, product=beta["slug"])
    assert attempt.status_code == 401 and error_code(attempt) == "auth.invalid_credentials"
    assert "Your payslip" not in await titles(client, squatted["access_token"])


async def test_a_secret_key_reaches_only_its_own_products_users(hub, client, mailbox):
    """Reproduction 2: acme's test key neither reads nor renames beta's live user, and its
    password reset mails never change beta's password."""
    acme, beta = create_product(hub), create_product(hub)
    victim = new_email()
    owner = await register(client, victim, name="Beta Name", product=beta["slug"])

    probe = await upsert(client, acme["sk_test"], external_id="x", email=victim, name="Hijacked")
    assert probe.status_code == 201, probe.text  # a new identity of acme's test environment
    assert probe.json()["user"]["id"] != owner["user"]["id"]
    assert probe.json()["user"]["name"] == "Hijacked"
    again = await upsert(client, acme["sk_test"], external_id="x", email=victim, name="Renamed")
    assert again.status_code == 200 and again.json()["user"]["id"] == probe.json()["user"]["id"]
    me = await client.get("/api/v1/auth/me", headers=bearer(owner["access_token"]))
    assert me.json()["user"]["name"] == "Beta Name"

    # acme's test environment may reset the password of *its* identity for that email…
    new_password = "AcmeChosen789!"
    acme_test = {"X-Publishable-Key": acme["pk_test"]}
    await reset_through_mail(client, mailbox, victim, new_password, acme_test)
    # …which is not beta's: beta's user keeps its password and its session.
    assert (await login(client, victim, PASSWORD, product=beta["slug"])).status_code == 200
    refused = await login(client, victim, new_password, product=beta["slug"])
    assert refused.status_code == 401
    me = await client.get("/api/v1/auth/me", headers=bearer(owner["access_token"]))
    assert me.status_code == 200


async def test_a_backend_upsert_takes_an_unproven_email_from_its_own_registrant(hub, client):
    """Reproduction 1 on one product: the squatter registered on beta itself, through its
    public endpoint; beta's backend vouching for the email takes the identity from them."""
    beta = create_product(hub)
    victim = new_email()
    squatter = await register(client, victim, password=ATTACKER_PASSWORD, product=beta["slug"])
    linked = await upsert(client, beta["sk_live"], external_id="crm-victim", email=victim)
    assert linked.status_code == 201 and linked.json()["user"]["id"] == squatter["user"]["id"]
    await publish(client, beta["sk_live"], squatter["user"]["id"], title="Your payslip")
    attempt = await login(client, victim, ATTACKER_PASSWORD, product=beta["slug"])
    assert attempt.status_code == 401
    listing = await client.get("/api/v1/notifications", headers=bearer(squatter["access_token"]))
    assert listing.status_code == 401
    # A second external id for the same (now password-less) identity takes nothing more.
    again = await upsert(client, beta["sk_live"], external_id="crm-victim-2", email=victim)
    assert again.json()["user"]["id"] == squatter["user"]["id"]


async def test_registering_elsewhere_neither_reveals_nor_locks_out_an_email(hub, client):
    """Reproduction 3: another product's registration of an existing email answers 201 like
    any new one, and a squatter on one product cannot lock the owner out of another."""
    first, second = create_product(hub), create_product(hub)
    victim = new_email()
    squatted = await register(client, victim, password=ATTACKER_PASSWORD, product=first["slug"])
    mine = await register(client, victim, password=OWNER_PASSWORD, product=second["slug"])
    assert mine["user"]["id"] != squatted["user"]["id"]
    assert (await login(client, victim, OWNER_PASSWORD, product=second["slug"])).status_code == 200
    cross = await login(client, victim, ATTACKER_PASSWORD, product=second["slug"])
    assert cross.status_code == 401
    # The squatter's own identity on the first product is untouched (it is not the owner's).
    assert (
        await login(client, victim, ATTACKER_PASSWORD, product=first["slug"])
    ).status_code == 200


async def test_a_test_key_never_changes_product_settings(hub, client):
    """Reproduction 4: settings are product-wide, so a test key's PATCH is refused and live
    logins from the real origin keep working."""
    product = create_product(hub)
    origin = "https://app.example.com"
    live = await client.patch(
        "/api/v1/product", headers=bearer(product["sk_live"]), json={"origins": [origin]}
    )
    assert live.status_code == 200, live.text
    for body in (
        {"origins": ["https://evil.example"], "alert_webhook_url": "https://evil.example/hook"},
        {"require_verified_email": True},
        {},
    ):
        refused = await client.patch(
            "/api/v1/product", headers=bearer(product["sk_test"]), json=body
        )
        assert refused.status_code == 403 and error_code(refused) == "auth.forbidden", refused.text
    settings = await client.get("/api/v1/product", headers=bearer(product["sk_live"]))
    assert settings.json()["product"]["origins"] == [origin]
    assert settings.json()["product"]["alert_webhook_url"] is None
    assert settings.json()["product"]["require_verified_email"] is False
    allowed = await client.post(
        "/api/v1/auth/register",
        headers={"X-Publishable-Key": product["pk_live"], "Origin": origin},
        json={
            "email": new_email("live"),
            "password": PASSWORD,
            "password_confirmation": PASSWORD,
            "organization_name": "Acme",
        },
    )
    assert allowed.status_code == 201, allowed.text


async def test_a_user_id_of_another_pool_is_a_404_like_a_missing_one(hub, client):
    mine, theirs = create_product(hub), create_product(hub)
    stranger = await register(client, new_email(), product=theirs["slug"])
    user_id = stranger["user"]["id"]
    sk = bearer(mine["sk_live"])
    for response in (
        await client.get(f"/api/v1/users/{user_id}", headers=sk),
        await client.post(f"/api/v1/users/{user_id}/tokens", headers=sk),
        await client.get("/api/v1/users/999999999", headers=sk),
    ):
        assert response.status_code == 404 and error_code(response) == "user.not_found"
    sent = await client.post(
        "/api/v1/notifications", headers=sk, json={"user_id": user_id, "title": "Hi"}
    )
    assert sent.status_code in (404, 422), sent.text
    assert "Hi" not in await titles(client, stranger["access_token"])


# -- one shared pool ------------------------------------------------------------------------


def pool_products(hub) -> tuple[dict[str, str], dict[str, str]]:
    pool = f"family-{uuid.uuid4().hex[:8]}"
    return (
        create_product(hub, None, "--identity-pool", pool),
        create_product(hub, None, "--identity-pool", pool),
    )


async def test_in_a_shared_pool_the_squatter_is_locked_out_and_the_owner_gets_in(
    hub, client, mailbox
):
    """Reproduction 1 inside one pool: beta's backend vouches for an email someone registered
    on demo without proving it. The squatter loses password, refresh token, access token,
    socket and workspace token; the mailbox owner gets in through a reset on beta."""
    demo, beta = pool_products(hub)
    victim = new_email()
    squatter = await register(client, victim, password=ATTACKER_PASSWORD, product=demo["slug"])
    assert squatter["user"]["email_verified"] is False
    socket = await cable(hub.url, squatter["access_token"])
    workspace = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=bearer(squatter["access_token"]),
        json={"workspace_api_token": {"name": "backdoor"}},
    )
    assert workspace.status_code == 201, workspace.text

    linked = await upsert(
        client, beta["sk_live"], external_id="crm-victim", email=victim, name="Real", locale="cs"
    )
    assert linked.status_code == 201
    user_id = linked.json()["user"]["id"]
    assert user_id == squatter["user"]["id"]  # one identity per pool…
    # …whose name and locale are now the product's, not what the squatter typed…
    assert (linked.json()["user"]["name"], linked.json()["user"]["locale"]) == ("Real", "cs")
    await publish(client, beta["sk_live"], user_id, title="Your payslip")

    # …but nothing of it is the squatter's any more.
    for product in (beta["slug"], demo["slug"]):
        attempt = await login(client, victim, ATTACKER_PASSWORD, product=product)
        assert attempt.status_code == 401 and error_code(attempt) == "auth.invalid_credentials"
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": squatter["refresh_token"]}
    )
    assert refreshed.status_code == 401
    listing = await client.get("/api/v1/notifications", headers=bearer(squatter["access_token"]))
    assert listing.status_code == 401
    gone = await socket.expect(lambda f: f.get("type") == "disconnect", within=5)
    assert gone["reason"] == "unauthorized" and gone["reconnect"] is False
    await socket.close()
    automation = await client.post(
        "/api/v1/notifications",
        headers=bearer(workspace.json()["token"]),
        json={"user_id": user_id, "title": "from the backdoor"},
    )
    assert automation.status_code == 401
    late = await CableClient.connect(hub.url, squatter["access_token"])
    assert (await late.expect(lambda f: f.get("type") == "disconnect"))["reason"] == "unauthorized"
    await late.close()

    await reset_through_mail(client, mailbox, victim, OWNER_PASSWORD, product_headers(beta["slug"]))
    entered = await login(client, victim, OWNER_PASSWORD, product=beta["slug"])
    assert entered.status_code == 200, entered.text
    assert entered.json()["user"]["email_verified"] is True
    assert "Your payslip" in await titles(client, entered.json()["access_token"])
    me = await client.get("/api/v1/auth/me", headers=bearer(entered.json()["access_token"]))
    assert me.json()["user"]["email_verified"] is True


async def test_in_a_shared_pool_a_second_registration_disowns_an_unproven_identity(
    hub, client, mailbox
):
    """Whoever registered first on demo proved nothing, and neither has the newcomer on
    beta: the newcomer gets 409 (no tokens), the first registrant's password and sessions
    stop working, and the address is mailed a link to set a password. The mailbox owner
    follows it and then registers on beta with that password."""
    demo, beta = pool_products(hub)
    victim = new_email()
    first = await register(client, victim, password=ATTACKER_PASSWORD, product=demo["slug"])
    before = len(mailbox.for_recipient(victim, "password_reset"))
    second = await register(
        client, victim, password=OWNER_PASSWORD, product=beta["slug"], expect=409
    )
    assert second["error"]["code"] == "auth.email_unconfirmed"
    assert "access_token" not in second

    assert (await login(client, victim, ATTACKER_PASSWORD, product=demo["slug"])).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert refreshed.status_code == 401
    me = await client.get("/api/v1/auth/me", headers=bearer(first["access_token"]))
    assert me.status_code == 401

    await reset_with_mailed_link(client, mailbox, victim, OWNER_PASSWORD, before)
    joined = await register(client, victim, password=OWNER_PASSWORD, product=beta["slug"])
    assert joined["user"]["id"] == first["user"]["id"]
    assert joined["user"]["email_verified"] is True
    assert (await login(client, victim, ATTACKER_PASSWORD, product=demo["slug"])).status_code == 401
    assert (await login(client, victim, OWNER_PASSWORD, product=demo["slug"])).status_code == 200


async def test_in_a_shared_pool_a_registration_elsewhere_costs_a_reset_never_data(
    hub, client, mailbox
):
    """The other way round: the real user registered on beta and has not confirmed yet; an
    attacker registering the address on demo locks them out until a reset, but takes nothing
    and destroys nothing."""
    demo, beta = pool_products(hub)
    victim = new_email()
    owner = await register(client, victim, password=OWNER_PASSWORD, product=beta["slug"])
    await publish(client, beta["sk_live"], owner["user"]["id"], title="Your invoice")
    refused = await register(
        client, victim, password=ATTACKER_PASSWORD, product=demo["slug"], expect=409
    )
    assert refused["error"]["code"] == "auth.email_unconfirmed"
    assert (await login(client, victim, ATTACKER_PASSWORD, product=demo["slug"])).status_code == 401

    await reset_through_mail(
        client, mailbox, victim, "OwnerAgain789!", product_headers(beta["slug"])
    )
    entered = await login(client, victim, "OwnerAgain789!", product=beta["slug"])
    assert entered.status_code == 200, entered.text
    assert entered.json()["user"]["id"] == owner["user"]["id"]
    assert "Your invoice" in await titles(client, entered.json()["access_token"])


async def test_in_a_shared_pool_a_registration_never_takes_an_identity_a_product_vouched_for(
    hub, client
):
    demo, beta = pool_products(hub)
    victim = new_email()
    linked = await upsert(client, beta["sk_live"], external_id="crm-victim", email=victim)
    await publish(client, beta["sk_live"], linked.json()["user"]["id"], title="Your payslip")
    refused = await register(
        client, victim, password=ATTACKER_PASSWORD, product=demo["slug"], expect=401
    )
    assert refused["error"]["code"] == "auth.invalid_credentials"
    assert (await login(client, victim, ATTACKER_PASSWORD, product=beta["slug"])).status_code == 401


async def test_in_a_shared_pool_a_proven_identity_is_shared_and_needs_its_password(
    hub, client, mailbox
):
    demo, beta = pool_products(hub)
    email = new_email("owner")
    first = await register(client, email, password=OWNER_PASSWORD, product=demo["slug"])
    # A completed reset proves the email.
    await reset_through_mail(client, mailbox, email, OWNER_PASSWORD, product_headers(demo["slug"]))

    wrong = await register(
        client, email, password=ATTACKER_PASSWORD, product=beta["slug"], expect=401
    )
    assert wrong["error"]["code"] == "auth.invalid_credentials"
    joined = await register(client, email, password=OWNER_PASSWORD, product=beta["slug"])
    assert joined["user"]["id"] == first["user"]["id"] and joined["user"]["email_verified"]
    linked = await upsert(client, beta["sk_live"], external_id="crm-1", email=email)
    assert linked.json()["user"]["id"] == first["user"]["id"]
    # Linking a proven identity takes nothing from its owner.
    assert (await login(client, email, OWNER_PASSWORD, product=demo["slug"])).status_code == 200
    # Live and test never share identities, even within the pool.
    test_user = await upsert(client, beta["sk_test"], external_id="crm-1", email=email)
    assert test_user.json()["user"]["id"] != first["user"]["id"]


def test_the_cli_puts_products_into_a_named_pool_and_refuses_bad_names(hub):
    bad = hub.cli(
        "products",
        "create",
        "--slug",
        f"p-{uuid.uuid4().hex[:8]}",
        "--name",
        "X",
        "--identity-pool",
        "Not A Name",
    )
    assert bad.returncode != 0 and "identity pool" in bad.stderr
    taken = create_product(hub)
    # A new product never silently joins the pool named after another product's slug…
    clash = hub.cli("products", "create", "--slug", taken["slug"], "--name", "Again")
    assert clash.returncode != 0 and "exists already" in clash.stderr
    # …but may join it when asked.
    joined = hub.cli(
        "products",
        "create",
        "--slug",
        f"p-{uuid.uuid4().hex[:8]}",
        "--name",
        "J",
        "--identity-pool",
        taken["slug"],
    )
    assert joined.returncode == 0, joined.stderr
    assert f"identity pool: {taken['slug']}" in joined.stdout


async def test_a_pre_hijackers_org_credentials_die_with_the_owners_first_reset(
    hub, client, mailbox
):
    """The squatter registered the address (on its own product: no other product involved)
    and made a workspace token and an OAuth application before anyone proved the email. The
    mailbox owner's reset revokes sessions and those credentials alike."""
    product = create_product(hub)
    victim = new_email()
    squatter = await register(client, victim, password=ATTACKER_PASSWORD, product=product["slug"])
    access = bearer(squatter["access_token"])
    workspace = await client.post(
        "/api/v1/workspace_api_tokens",
        headers=access,
        json={"workspace_api_token": {"name": "backdoor"}},
    )
    assert workspace.status_code == 201, workspace.text
    app = await client.post(
        "/api/v1/oauth_applications",
        headers=access,
        json={"oauth_application": {"name": "backdoor", "scopes": ["notifications:read"]}},
    )
    assert app.status_code == 201, app.text
    app_basic = base64.b64encode(
        f"{app.json()['client_id']}:{app.json()['client_secret']}".encode()
    ).decode()

    await reset_through_mail(
        client, mailbox, victim, OWNER_PASSWORD, product_headers(product["slug"])
    )
    owner = await login(client, victim, OWNER_PASSWORD, product=product["slug"])
    assert owner.status_code == 200 and owner.json()["user"]["email_verified"] is True
    user_id = owner.json()["user"]["id"]
    await publish(client, product["sk_live"], user_id, title="Your payslip")

    read = await client.get(
        f"/api/v1/users/{user_id}/notifications", headers=bearer(workspace.json()["token"])
    )
    assert read.status_code == 401
    minted = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {app_basic}"},
    )
    assert minted.status_code == 401 and minted.json()["error"] == "invalid_client"


async def test_a_login_racing_a_disown_never_keeps_a_session(hub, client):
    """Checking a password takes tens of milliseconds; logins with the squatter's password
    that overlap the product backend's vouch for the address must end with no live session
    (before the fix, one survived in 5 of 5 tries)."""
    demo, beta = pool_products(hub)
    for _ in range(3):
        victim = new_email()
        await register(client, victim, password=ATTACKER_PASSWORD, product=demo["slug"])

        async def vouch(email: str) -> httpx.Response:
            await asyncio.sleep(0.02)
            return await upsert(client, beta["sk_live"], external_id=new_email(), email=email)

        *logins, vouched = await asyncio.gather(
            *(login(client, victim, ATTACKER_PASSWORD, product=demo["slug"]) for _ in range(6)),
            vouch(victim),
        )
        assert vouched.status_code == 201, vouched.text
        for entered in logins:
            assert entered.status_code in (200, 401), entered.text
            if entered.status_code == 200:
                me = await client.get(
                    "/api/v1/auth/me", headers=bearer(entered.json()["access_token"])
                )
                assert me.status_code == 401, "a session of the squatter outlived the disown"


async def test_registrations_racing_on_two_products_of_a_pool_give_nobody_the_identity(
    hub, client, mailbox
):
    """The same new address registered on demo and beta at once, with two passwords: the
    later of the two meets the other's identity and answers 409, and no session of either
    outlives it; the mailbox owner is sent the link to set a password."""
    demo, beta = pool_products(hub)
    victim = new_email()
    before = len(mailbox.for_recipient(victim, "password_reset"))

    def registering(password: str, slug: str) -> Awaitable[httpx.Response]:
        body = {"email": victim, "password": password, "password_confirmation": password}
        return client.post(
            "/api/v1/auth/register",
            headers=product_headers(slug),
            json={**body, "organization_name": "Acme"},
        )

    answers = await asyncio.gather(
        registering(ATTACKER_PASSWORD, demo["slug"]), registering(OWNER_PASSWORD, beta["slug"])
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses[1] == 409 and statuses[0] in (201, 401), [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 201:
            me = await client.get("/api/v1/auth/me", headers=bearer(answer.json()["access_token"]))
            assert me.status_code == 401
    await reset_with_mailed_link(client, mailbox, victim, "OwnerAgain789!", before)
