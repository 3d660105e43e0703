"""What one cable client may hold and do, against a real hub: subscriptions per socket,
identifier size, sockets per user, actions per second, and frames that must never hurt the hub
(NaN, lone surrogates, NUL) in either direction. Defaults: 32 subscriptions, 1 KiB identifiers,
16 sockets per user, 10 actions a second with a burst of 20."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time

import httpx
import pytest
import websockets

from tests.support import (
    NOTIFICATIONS_IDENTIFIER,
    CableClient,
    HubServer,
    api_user,
    bearer,
    cable,
    create_product,
    publish,
)
from tests.test_resilience import (  # several hubs on one database and Redis
    database_url,  # noqa: F401 (a fixture)
    new_hub,
    processes,  # noqa: F401 (a fixture)
    shared_redis,  # noqa: F401 (a fixture)
    start_pair,
)

NI = NOTIFICATIONS_IDENTIFIER
INVALID_REQUEST = {"type": "disconnect", "reason": "invalid_request", "reconnect": False}
RATE_LIMITED = {"action": "error", "for": "mark_all_read", "code": "rate_limited"}


@pytest.fixture
async def product(hub):
    return create_product(hub)


def tab_identifier(tab: object, pad: str = "") -> str:
    return json.dumps({"channel": "NotificationsChannel", "tab": tab, "pad": pad})


def strict_json(text: str) -> object:
    """JSON as a browser's JSON.parse reads it: no NaN, Infinity or -Infinity."""

    def refuse(name: str) -> object:
        raise AssertionError(f"the hub sent a bare {name}: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


async def metric(hub, name: str) -> float:
    async with httpx.AsyncClient(base_url=hub.url) as http:
        text = (await http.get("/metrics")).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


async def barrier(tab: CableClient) -> list[dict]:
    """Every frame (pings aside) the hub sent before it handled a duplicate subscribe."""
    await tab.send({"command": "subscribe", "identifier": NI})
    frames = []
    while (frame := await tab.expect(lambda f: True)) != {
        "identifier": NI,
        "type": "confirm_subscription",
    }:
        frames.append(frame)
    return frames


# -- subscriptions per socket and identifier size -----------------------------------------


async def test_a_socket_holds_at_most_32_subscriptions(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)  # subscription 1
    for i in range(31):
        assert (await tab.subscribe(tab_identifier(i)))["type"] == "confirm_subscription"
    over = await tab.subscribe(tab_identifier(31))
    assert over == {"identifier": tab_identifier(31), "type": "reject_subscription"}
    # The refused one receives nothing; the others still work, and a freed place is usable.
    await publish(client, product["sk_live"], user_id)
    frames = [await tab.expect(lambda f: "message" in f) for _ in range(32)]
    assert tab_identifier(31) not in {f["identifier"] for f in frames}
    await tab.send({"command": "unsubscribe", "identifier": tab_identifier(0)})
    assert (await tab.subscribe(tab_identifier(31)))["type"] == "confirm_subscription"
    await tab.close()


async def test_an_identifier_over_1_kib_is_rejected(hub, client, product):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    big = tab_identifier(1, pad="x" * 1024)
    assert await tab.subscribe(big) == {"identifier": big, "type": "reject_subscription"}
    # Multi-byte characters count as bytes, not characters.
    wide = tab_identifier(2, pad="ř" * 500)
    assert (await tab.subscribe(wide))["type"] == "reject_subscription"
    assert (await tab.subscribe(tab_identifier(3, pad="x" * 900)))["type"] == (
        "confirm_subscription"
    )
    await tab.close()


async def test_insisting_on_oversized_subscriptions_ends_the_connection(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    bystander = await cable(hub.url, token)
    tab = await cable(hub.url, token)
    for i in range(20):
        await tab.send({"command": "subscribe", "identifier": tab_identifier(i, "x" * 60_000)})
    assert await tab.expect(lambda f: f.get("type") == "disconnect") == INVALID_REQUEST
    await publish(client, product["sk_live"], user_id)
    assert (await bystander.next_message("new_notification"))["unread_count"] == 1
    await bystander.close()


async def test_subscriptions_leave_the_registry_when_the_socket_closes(hub, client, product):
    _, token = await api_user(client, product["sk_live"])
    before = await metric(hub, "hub_cable_subscriptions")
    tab = await cable(hub.url, token)
    for i in range(10):
        await tab.subscribe(tab_identifier(i))
    assert await metric(hub, "hub_cable_subscriptions") >= before + 11
    await tab.close()
    deadline = time.monotonic() + 5
    while await metric(hub, "hub_cable_subscriptions") > before:
        assert time.monotonic() < deadline, "subscriptions outlived their socket"
        await asyncio.sleep(0.05)


# -- sockets per user ---------------------------------------------------------------------


async def test_a_user_has_at_most_16_sockets_and_the_17th_is_refused(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    _, other_token = await api_user(client, product["sk_live"])
    refused_before = await metric(hub, "hub_cable_sockets_refused_total")
    tabs = [await cable(hub.url, token) for _ in range(16)]

    extra = await CableClient.connect(hub.url, token)
    assert await extra.recv() == INVALID_REQUEST  # no welcome: told, then closed
    with pytest.raises(websockets.ConnectionClosed):
        await extra.recv()
    assert await metric(hub, "hub_cable_sockets_refused_total") == refused_before + 1

    # Another user is not affected, and the 16 still receive.
    other = await cable(hub.url, other_token)
    await publish(client, product["sk_live"], user_id)
    for tab in tabs:
        assert (await tab.next_message("new_notification"))["unread_count"] == 1

    # A closed socket frees its place.
    await tabs.pop().close()
    deadline = time.monotonic() + 5
    while True:
        again = await CableClient.connect(hub.url, token)
        if await again.recv() == {"type": "welcome"}:
            break
        assert time.monotonic() < deadline, "a closed socket kept its place"
        await asyncio.sleep(0.1)
    for tab in [*tabs, other, again]:
        await tab.close()


# -- actions per second -------------------------------------------------------------------


async def test_an_action_flood_is_dropped_and_the_socket_told_once_a_second(hub, client, product):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    started = time.monotonic()
    for _ in range(60):
        await tab.perform("mark_all_read")
    frames = await barrier(tab)
    elapsed = time.monotonic() - started
    # Read-state broadcasts travel through the broker: give the last ones time to arrive.
    with contextlib.suppress(AssertionError):
        while True:
            frames.append(await tab.expect(lambda f: True, within=0.5))
    answers = [json.loads(f["message"]) for f in frames if "message" in f]
    done = [a for a in answers if a.get("action") == "all_read"]
    told = [a for a in answers if a == RATE_LIMITED]
    # The burst of 20 less the subscribe's token, plus what 10 a second refilled meanwhile;
    # the rest dropped.
    assert 19 <= len(done) <= 20 + 10 * elapsed + 1, (len(done), elapsed)
    assert 1 <= len(told) <= 1 + elapsed, told
    assert not [f for f in frames if f.get("type") == "disconnect"]
    # The bucket refills: a second later the socket's actions work again.
    await asyncio.sleep(1.1)
    await tab.perform("mark_all_read")
    assert (await tab.next_message("all_read"))["unread_count"] == 0
    await tab.close()


async def test_a_sustained_flood_is_throttled_not_served(hub, client, product):
    # The hub reads a flooding socket at about twice its action rate: ~20 frames a second.
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    frame = json.dumps({"command": "message", "identifier": NI, "data": '{"action":"sync"}'})
    started = time.monotonic()
    for _ in range(100):
        await tab.ws.send(frame)
    frames = await barrier(tab)
    elapsed = time.monotonic() - started
    answers = [json.loads(f["message"]) for f in frames if "message" in f]
    served = [a for a in answers if a.get("action") == "sync"]
    told = [a for a in answers if a.get("code") == "rate_limited"]
    assert elapsed > 2, elapsed  # 100 frames took seconds to be read, not milliseconds
    assert len(served) <= 20 + 10 * elapsed + 1, (len(served), elapsed)
    assert 1 <= len(told) <= 1 + elapsed, (told, elapsed)
    assert not [f for f in frames if f.get("type") == "disconnect"]
    await tab.close()


@pytest.fixture(scope="module")
def tight_hub(tmp_path_factory, mailbox, redis_url):
    """Actions at 2/s with a burst of 5: a flood outruns the bucket however slowly a loaded
    machine serves each action (at the default 10/s, a 2-core machine under load can serve
    mark_all_read slower than the bucket refills, and nothing is ever throttled)."""
    server = HubServer(
        workdir=tmp_path_factory.mktemp("tight-hub"),
        smtp_port=mailbox.port,
        redis_url=redis_url,
        extra_env={"HUB_CABLE_ACTIONS_PER_SECOND": "2", "HUB_CABLE_ACTION_BURST": "5"},
    )
    server.start()
    yield server
    server.stop()


async def test_one_user_flooding_from_5_sockets_does_not_delay_another(tight_hub):
    hub, product = tight_hub, create_product(tight_hub)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30) as client:
        await _flood_from_5_sockets(hub, client, product)


async def _flood_from_5_sockets(hub, client, product) -> None:
    _, flooder_token = await api_user(client, product["sk_live"])
    victim_id, victim_token = await api_user(client, product["sk_live"])
    victim = await cable(hub.url, victim_token)
    flooders = [await cable(hub.url, flooder_token) for _ in range(5)]
    limited_before = await metric(hub, "hub_cable_actions_rate_limited_total")

    async def flood(tab: CableClient) -> None:
        frame = json.dumps(
            {"command": "message", "identifier": NI, "data": '{"action":"mark_all_read"}'}
        )
        for _ in range(60):
            await tab.ws.send(frame)

    flooding = asyncio.gather(*(flood(tab) for tab in flooders))
    latencies = []
    for _ in range(5):
        sent = time.monotonic()
        [notification_id] = await publish(client, product["sk_live"], victim_id)
        got = await victim.next_message("new_notification", within=5)
        assert got["notification"]["id"] == notification_id
        latencies.append(time.monotonic() - sent)
    await flooding
    assert max(latencies) < 1.0, latencies
    for tab in flooders:
        told = await tab.next_message("error")
        assert told == RATE_LIMITED
    assert await metric(hub, "hub_cable_actions_rate_limited_total") >= limited_before + 5
    await victim.close()
    for tab in flooders:  # hundreds of unread all_read frames: no closing handshake
        tab.ws.transport.abort()


async def test_duplicate_subscribes_share_the_action_budget(hub, client, product):
    # An outside test saw 200 duplicate subscribes confirmed within 0.04 s. Each one draws a
    # token like a new subscription: none is dropped, those over the burst come later.
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)  # its subscribe took one token of the 20
    started = time.monotonic()
    for _ in range(40):
        await tab.send({"command": "subscribe", "identifier": NI})
    for _ in range(40):
        confirmed = await tab.expect(lambda f: "type" in f)
        assert confirmed == {"identifier": NI, "type": "confirm_subscription"}
    # 19 tokens in the bucket, 10 a second after that: the 40th waits about 2 s.
    assert time.monotonic() - started > 1.5
    await tab.close()


# -- what actions accept and answer -------------------------------------------------------


@pytest.mark.parametrize("since", [[], {}, False, True, "", "abc", "-1", "1e3", 1.5, -1])
async def test_sync_since_must_be_an_id(hub, client, product, since):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    await tab.perform("sync", since=since)
    assert await tab.next_message() == {
        "action": "error",
        "for": "sync",
        "code": "validation.failed",
    }
    await tab.close()


async def test_sync_since_absent_null_or_digits(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    [first, second] = [(await publish(client, product["sk_live"], user_id))[0] for _ in range(2)]
    tab = await cable(hub.url, token)
    for data, expected in (
        ({}, [first, second]),
        ({"since": None}, [first, second]),
        ({"since": str(first)}, [second]),  # the JS client may send ids as strings
        ({"since": second}, []),
    ):
        await tab.perform("sync", **data)
        answer = await tab.next_message()
        assert answer["action"] == "sync", (data, answer)
        assert [n["id"] for n in answer["notifications"]] == expected, data
    await tab.close()


async def test_mark_read_of_a_read_notification_is_answered_on_its_tab(hub, client, product):
    user_id, token = await api_user(client, product["sk_live"])
    tab, other = await cable(hub.url, token), await cable(hub.url, token)
    for _ in range(2):
        [read] = await publish(client, product["sk_live"], user_id)  # the second one is read
    state = {"action": "notification_read", "id": read, "unread_count": 1}
    await tab.perform("mark_read", id=read)
    for listener in (tab, other):
        assert await listener.next_message("notification_read") == state
    # Again, as a number or a string of digits: the same state, on the asking tab alone
    # (the other tabs already know it).
    for again in (read, str(read)):
        await tab.perform("mark_read", id=again)
        assert await tab.next_message("notification_read") == state
    assert await barrier(other) == []
    for listener in (tab, other):
        await listener.close()


# -- frames that must not hurt ------------------------------------------------------------


def _message(data: str) -> str:
    return json.dumps({"command": "message", "identifier": NI, "data": data})


# Frames that are invalid (counted, no answer): not what JSON.stringify produces.
INVALID = {
    "NaN in since": _message('{"action":"sync","since":NaN}'),
    "Infinity in id": _message('{"action":"mark_read","id":Infinity}'),
    "-Infinity in id": _message('{"action":"mark_read","id":-Infinity}'),
    "1e999 in since": _message('{"action":"sync","since":1e999}'),
    "NaN at the top": _message('{"action":"sync"}')[:-1] + ',"x":NaN}',
    "lone surrogate in data": _message('{"action":"sync","since":"\\ud800"}'),
    "lone surrogate in the action": _message('{"action":"\\udfff"}'),
    "lone surrogate in a key": '{"command":"subscribe","identifier":'
    + json.dumps(NI)
    + ',"\\ud800":1}',
    "NUL in data": _message('{"action":"mark_read","id":"1\\u0000"}'),
    "NUL in the command": json.dumps({"command": "message\x00", "identifier": NI}),
    "data 40 levels deep": _message('{"action":"sync","since":' + "[" * 40 + "]" * 40 + "}"),
}

# Subscribes whose identifier is not strict JSON: the protocol's answer is a rejection.
REJECTED = {
    "NaN in the identifier": '{"channel":"NotificationsChannel","tab":NaN}',
    "Infinity in the identifier": '{"channel":"NotificationsChannel","tab":Infinity}',
    "lone surrogate in the identifier": '{"channel":"NotificationsChannel","tab":"\\ud800"}',
    "NUL in the identifier": '{"channel":"NotificationsChannel","tab":"\\u0000"}',
    "identifier 40 levels deep": '{"channel":"NotificationsChannel","tab":'
    + "[" * 40
    + "]" * 40
    + "}",
}


@pytest.mark.parametrize("name", list(INVALID))
async def test_a_frame_json_stringify_cannot_produce_is_counted_not_answered(
    hub, client, product, name
):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    await tab.send(INVALID[name])
    assert await barrier(tab) == []
    # Counted as invalid: 19 more of them end the connection.
    for _ in range(19):
        await tab.send(INVALID[name])
    assert await tab.expect(lambda f: f.get("type") == "disconnect") == INVALID_REQUEST
    assert "Traceback" not in hub.logs()


@pytest.mark.parametrize("name", list(REJECTED))
async def test_an_identifier_that_is_not_strict_json_is_rejected(hub, client, product, name):
    _, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    identifier = REJECTED[name]
    await tab.send(json.dumps({"command": "subscribe", "identifier": identifier}))
    rejection = json.loads(await asyncio.wait_for(tab.ws.recv(), 5), parse_constant=str)
    assert rejection == {"identifier": identifier, "type": "reject_subscription"}
    assert await barrier(tab) == []
    assert "Traceback" not in hub.logs()


async def test_a_stored_nan_never_reaches_a_frame_as_a_bare_nan(hub, client, product):
    if hub.database_url:
        pytest.skip("PostgreSQL's json type cannot store NaN; only SQLite can hand one back")
    user_id, token = await api_user(client, product["sk_live"])
    tab = await cable(hub.url, token)
    recipients = json.dumps([{"user_id": user_id}])
    body = f'{{"recipients":{recipients},"title":"NaN","data":{{"ratio":NaN,"top":Infinity}}}}'
    headers = {**bearer(product["sk_live"]), "Content-Type": "application/json"}
    refused = await client.post("/api/v1/notifications", headers=headers, content=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "request.malformed_json"

    # A row stored before the input was strict (older versions on SQLite) still holds NaN.
    published = await client.post(
        "/api/v1/notifications",
        headers=headers,
        content=json.dumps({"user_id": user_id, "title": "NaN", "data": {"ratio": 1.5}}),
    )
    assert published.status_code == 201, published.text
    notification_id = published.json()["notifications"][0]["id"]
    with sqlite3.connect(hub.workdir / "hub.db", timeout=15) as db:
        db.execute(
            "UPDATE notifications SET data = ? WHERE id = ?",
            ('{"ratio": NaN, "top": Infinity}', notification_id),
        )

    await tab.perform("sync", since=0)
    while True:  # skip pings and the live frame of the publish above
        frame = strict_json(await asyncio.wait_for(tab.ws.recv(), 5))
        message = strict_json(frame["message"]) if isinstance(frame.get("message"), str) else {}
        if "notifications" in message:
            break
    [synced] = message["notifications"]
    assert synced["data"] == {"ratio": None, "top": None}
    assert synced["title"] == "NaN"  # a title is text, left alone
    await tab.close()


# -- sockets per user across hub processes (Redis) ----------------------------------------


async def test_sockets_per_user_count_across_processes_and_a_crashed_process_frees_its_own(
    tmp_path,
    database_url,  # noqa: F811
    processes,  # noqa: F811
    shared_redis,  # noqa: F811
):
    limits = {"HUB_CABLE_MAX_SOCKETS_PER_USER": "4", "HUB_CABLE_SOCKET_LEASE_SECONDS": "3"}
    a = new_hub(processes, tmp_path / "a", database_url, shared_redis, **limits)
    b = new_hub(processes, tmp_path / "b", database_url, shared_redis, twin_of=a)
    sk = await start_pair(a, b)
    async with httpx.AsyncClient(base_url=b.url, timeout=30) as http:
        _, token = await api_user(http, sk)
    on_a = [await cable(a.url, token) for _ in range(3)]
    on_b = [await cable(b.url, token)]
    for hub in (b, a):  # the fifth socket is refused on either process
        extra = await CableClient.connect(hub.url, token)
        assert await extra.recv() == INVALID_REQUEST

    # A crashes without closing anything: its three sockets stop counting once their leases
    # lapse, while B's socket keeps its place (B renews it).
    a.process.kill()
    a.process.wait(10)
    crashed = time.monotonic()
    while True:
        again = await CableClient.connect(b.url, token)
        if await again.recv() == {"type": "welcome"}:
            break
        # The leases last 3 s; the rest is slack for a loaded machine (two suites at once
        # took over 10 s here), not for sockets that never stop counting.
        assert time.monotonic() - crashed < 20, "a crashed process's sockets kept counting"
        await asyncio.sleep(0.2)
    on_b.append(again)
    for _ in range(2):
        on_b.append(await cable(b.url, token))
    extra = await CableClient.connect(b.url, token)
    assert await extra.recv() == INVALID_REQUEST
    for tab in on_b:
        await tab.close()
    del on_a
