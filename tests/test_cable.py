"""The cable against a real hub: ActionCable handshake, NotificationsChannel, and its actions."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from tests.support import (
    NOTIFICATIONS_IDENTIFIER,
    CableClient,
    api_user,
    bearer,
    cable,
    create_product,
    publish,
    register,
)


@pytest.fixture
async def product(hub):
    return create_product(hub)


async def test_no_compression_even_when_the_client_offers_it(hub, client, product):
    # Every browser offers permessage-deflate; its zlib state would cost ~40 KB per socket.
    _, token = await api_user(client, product["sk_live"])
    tab = await CableClient.connect(hub.url, token, compression="deflate")
    assert tab.ws.response.headers.get("Sec-WebSocket-Extensions") is None
    assert await tab.recv() == {"type": "welcome"}
    await tab.close()


async def test_handshake_subscribe_and_receive(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"], name="Jan", locale="cs")
    tab = await CableClient.connect(hub.url, token)
    assert tab.ws.subprotocol == "actioncable-v1-json"
    assert await tab.recv() == {"type": "welcome"}
    confirmed = await tab.subscribe()
    assert confirmed == {"identifier": NOTIFICATIONS_IDENTIFIER, "type": "confirm_subscription"}

    [notification_id] = await publish(
        client,
        product["sk_live"],
        user_id,
        title="SLA Warning",
        message="DSAR approaching deadline",
        url="/issues/456",
        type="sla_warning",
        data={"issue": 456},
    )
    frame = await tab.expect(lambda f: "message" in f)
    assert frame["identifier"] == NOTIFICATIONS_IDENTIFIER
    assert isinstance(frame["message"], str)  # the seed's client JSON.parses it
    message = json.loads(frame["message"])
    assert message["action"] == "new_notification"
    assert message["unread_count"] == 1
    n = message["notification"]
    assert n["id"] == notification_id
    assert (n["title"], n["message"], n["url"], n["type"]) == (
        "SLA Warning",
        "DSAR approaching deadline",
        "/issues/456",
        "sla_warning",
    )
    assert n["created_at"] == "právě teď"  # relative, in the user's locale
    assert n["created_at_iso"].endswith("Z")
    assert n["data"] == {"issue": 456}
    await tab.close()


async def test_plain_websocket_without_subprotocol(hub, client, product):
    _, token = await api_user(client, product["sk_live"])
    url = hub.url.replace("http://", "ws://") + f"/cable?token={token}"
    async with websockets.connect(url) as ws:
        assert ws.subprotocol is None
        assert json.loads(await ws.recv()) == {"type": "welcome"}


async def test_duplicate_subscribe_is_confirmed_again_and_unknown_channel_rejected(
    hub, client, product
):
    user_id, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    again = await tab.subscribe()
    assert again["type"] == "confirm_subscription"
    unknown = json.dumps({"channel": "AdminChannel"})
    assert (await tab.subscribe(unknown))["type"] == "reject_subscription"
    # Still exactly one delivery per notification despite the double subscribe.
    await publish(client, product["sk_live"], user_id)
    await tab.next_message("new_notification")
    with pytest.raises(AssertionError):
        await tab.next_message("new_notification", within=0.5)
    await tab.close()


async def test_ping_every_three_seconds(hub, client, product):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    first = await tab.recv(within=4)
    assert first["type"] == "ping" and isinstance(first["message"], int)
    second = await tab.recv(within=4)
    assert second["type"] == "ping" and 2 <= second["message"] - first["message"] <= 4
    await tab.close()


@pytest.mark.parametrize("kind", ["garbage", "refresh", "expired"])
async def test_bad_tokens_get_unauthorized(hub, client, email, kind):
    tokens = await register(client, email)
    token = {"garbage": "not-a-token", "refresh": tokens["refresh_token"]}.get(kind)
    if kind == "expired":
        import time

        import jwt

        from auth.tokens import load_signing_keys

        key = load_signing_keys(hub.private_key_pem)[-1]
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 10
        token = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    tab = await CableClient.connect(hub.url, token)
    assert await tab.recv() == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    with pytest.raises(websockets.ConnectionClosed):
        await tab.recv()


async def test_disallowed_origin_is_refused_at_upgrade(hub, client, email):
    tokens = await register(client, email)
    url = hub.url.replace("http://", "ws://") + f"/cable?token={tokens['access_token']}"
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    async with websockets.connect(url, origin=hub.url) as ws:  # the product's own origin
        assert json.loads(await ws.recv()) == {"type": "welcome"}


async def test_logout_drops_the_sessions_sockets_within_a_second(hub, client, email):
    tokens = await register(client, email)
    other = (
        await client.post(
            "/api/v1/auth/login",
            headers={"X-Product-Slug": "demo"},
            json={"email": email, "password": "SecurePass123!"},
        )
    ).json()
    tab = await cable(hub.url, tokens["access_token"])
    bystander = await cable(hub.url, other["access_token"])  # another session of the user
    assert (
        await client.post("/api/v1/auth/logout", headers=bearer(tokens["access_token"]))
    ).status_code == 204
    frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=1.0)
    assert frame == {"type": "disconnect", "reason": "unauthorized", "reconnect": False}
    # A new socket with the revoked token is refused; the other session is untouched.
    late = await CableClient.connect(hub.url, tokens["access_token"])
    assert (await late.recv())["reason"] == "unauthorized"
    with pytest.raises(AssertionError):
        await bystander.expect(lambda f: f.get("type") == "disconnect", within=0.5)
    await bystander.close()


async def test_read_state_reaches_every_tab(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    tab_a, tab_b = await cable(hub.url, token), await cable(hub.url, token)
    first, second = (
        await publish(client, product["sk_live"], [user_id]),
        await publish(client, product["sk_live"], [user_id]),
    )
    for tab in (tab_a, tab_b):
        assert (await tab.next_message("new_notification"))["unread_count"] == 1
        assert (await tab.next_message("new_notification"))["unread_count"] == 2

    await tab_a.perform("mark_read", id=first[0])
    for tab in (tab_a, tab_b):
        assert await tab.next_message("notification_read") == {
            "action": "notification_read",
            "id": first[0],
            "unread_count": 1,
        }
    await tab_b.perform("mark_all_read")
    for tab in (tab_a, tab_b):
        assert (await tab.next_message("all_read"))["unread_count"] == 0

    listing = await client.get("/api/v1/notifications", headers=bearer(token))
    assert listing.json()["unread_count"] == 0
    assert all(n["read"] for n in listing.json()["notifications"])
    assert {n["id"] for n in listing.json()["notifications"]} == {first[0], second[0]}
    for tab in (tab_a, tab_b):
        await tab.close()


async def test_mark_read_of_someone_elses_notification(hub, client, product):
    owner, _ = await api_user(client, product["sk_live"])
    _, intruder_token = await api_user(client, product["sk_live"])
    [foreign] = await publish(client, product["sk_live"], owner)
    tab = await cable(hub.url, intruder_token)
    await tab.perform("mark_read", id=foreign)
    error = await tab.next_message("error")
    assert error == {"action": "error", "for": "mark_read", "code": "notification.not_found"}
    count = await client.get("/api/v1/notifications/unread_count", headers=bearer(intruder_token))
    assert count.json() == {"unread_count": 0}
    await tab.close()


async def test_sync_returns_what_was_missed(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    [seen] = await publish(client, product["sk_live"], user_id)
    missed = [
        (await publish(client, product["sk_live"], user_id, title=f"n{i}"))[0] for i in range(3)
    ]
    tab = await cable(hub.url, token)
    await tab.perform("sync", since=seen)
    answer = await tab.next_message("sync")
    assert [n["id"] for n in answer["notifications"]] == missed
    assert answer["has_more"] is False
    assert answer["unread_count"] == 4
    await tab.close()


async def test_a_user_only_hears_their_own_stream(hub, client, product):
    alice, _ = await api_user(client, product["sk_live"])
    bob, bob_token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, bob_token)
    await publish(client, product["sk_live"], alice)
    with pytest.raises(AssertionError):
        await tab.next_message(within=0.7)
    await publish(client, product["sk_live"], bob)
    assert (await tab.next_message("new_notification"))["unread_count"] == 1
    await tab.close()


async def test_garbage_closes_only_the_offender(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    victim = await cable(hub.url, token)
    offender = await cable(hub.url, token)
    for frame in ["{nope", "[]", '{"command":"explode","identifier":"x"}', "x" * 70_000] * 5:
        await offender.send(frame)
    closing = await offender.expect(lambda f: f.get("type") == "disconnect")
    assert closing == {"type": "disconnect", "reason": "invalid_request", "reconnect": False}
    await publish(client, product["sk_live"], user_id)
    assert (await victim.next_message("new_notification"))["unread_count"] == 1
    await victim.close()


async def test_shutdown_tells_clients_server_restart(tmp_path, mailbox):
    import httpx

    from tests.support import HubServer

    server = HubServer(workdir=tmp_path)
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            keys = create_product(server)
            _, token = await api_user(http, keys["sk_live"])
        tab = await cable(server.url, token)
        server.process.terminate()
        frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=5)
        assert frame == {"type": "disconnect", "reason": "server_restart", "reconnect": True}
    finally:
        server.stop()


async def test_token_expiry_while_connected(hub, client, product):
    import time

    import jwt

    from auth.tokens import load_signing_keys

    _, token = await api_user(client, product["sk_live"])
    key = load_signing_keys(hub.private_key_pem)[-1]
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["exp"] = int(time.time()) + 2  # a genuine token with two seconds left
    short = jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid})
    tab = await cable(hub.url, short)
    frame = await tab.expect(lambda f: f.get("type") == "disconnect", within=5)
    assert frame == {"type": "disconnect", "reason": "token_expired", "reconnect": True}


async def test_concurrent_first_subscribes_to_one_stream_both_deliver(hub, client, product):
    # broadcaster's own subscribe() loses a subscriber when two sockets subscribe one new
    # channel at once; the registry must not.
    user_id, token = await api_user(client, product["sk_live"])
    tabs = [await CableClient.connect(hub.url, token) for _ in range(4)]
    for tab in tabs:
        assert await tab.recv() == {"type": "welcome"}
    confirmations = await asyncio.gather(*(tab.subscribe() for tab in tabs))
    assert {c["type"] for c in confirmations} == {"confirm_subscription"}
    await publish(client, product["sk_live"], user_id)
    for tab in tabs:
        assert (await tab.next_message("new_notification"))["unread_count"] == 1
    # The last one out unsubscribes the stream; a newcomer subscribes it again.
    for tab in tabs:
        await tab.close()
    await asyncio.sleep(0.3)
    again = await cable(hub.url, token)
    await publish(client, product["sk_live"], user_id)
    assert (await again.next_message("new_notification"))["unread_count"] == 2
    await again.close()
