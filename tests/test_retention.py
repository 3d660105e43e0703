"""`notification-hub prune`: old notifications and idempotency keys go, unread counts stay exact."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import sqlalchemy as sa
from databases import Database

from infra.db import connect_database, utcnow
from notifications.tables import idempotency_keys, notifications
from tests.support import api_user, bearer, create_product, publish


@contextlib.asynccontextmanager
async def _hub_database(hub) -> AsyncIterator[Database]:
    db = connect_database(hub.database_url or f"sqlite:///{hub.workdir / 'hub.db'}")
    await db.connect()
    try:
        yield db
    finally:
        await db.disconnect()


async def _age(hub, table: sa.Table, ids: list[int], by: timedelta) -> None:
    """Make rows look older than they are (the test cannot wait 30 days)."""
    async with _hub_database(hub) as db:
        await db.execute(table.update().where(table.c.id.in_(ids)).values(created_at=utcnow() - by))


async def _unread(client, token: str) -> tuple[int, list[int]]:
    count = await client.get("/api/v1/notifications/unread_count", headers=bearer(token))
    listed = await client.get("/api/v1/notifications", headers=bearer(token))
    assert count.status_code == listed.status_code == 200
    return count.json()["unread_count"], [n["id"] for n in listed.json()["notifications"]]


def test_prune_refuses_a_missing_or_senseless_retention(hub):
    for args in (
        [],
        ["--days", "0"],
        ["--days", "-3"],
        ["--days", "x"],
        ["--days", "1", "--idempotency-hours", "0"],
        # Beyond what a date can be set back by (these once ended in an OverflowError).
        ["--days", "800000"],
        ["--days", "99999999999999"],
        ["--days", "90", "--idempotency-hours", "20000000"],
    ):
        result = hub.cli("prune", *args)
        assert result.returncode == 2, (args, result.stdout)
        assert "Traceback" not in result.stderr
        last_line = result.stderr.strip().splitlines()[-1]
        assert "--days" in last_line or "must be from 1 to" in last_line, last_line


async def test_prune_deletes_only_old_notifications_and_keeps_unread_counts_exact(hub, client):
    keys = create_product(hub)
    alice, alice_token = await api_user(client, keys["sk_live"])
    bob, bob_token = await api_user(client, keys["sk_live"])
    a_old_read, a_old_unread, a_new = [
        (await publish(client, keys["sk_live"], alice))[0] for _ in range(3)
    ]
    b_old, b_new = [(await publish(client, keys["sk_live"], bob))[0] for _ in range(2)]
    marked = await client.post(
        f"/api/v1/notifications/{a_old_read}/read", headers=bearer(alice_token)
    )
    assert marked.status_code == 200, marked.text
    assert await _unread(client, alice_token) == (2, [a_new, a_old_unread, a_old_read])

    await _age(hub, notifications, [a_old_read, a_old_unread, b_old], timedelta(days=31))
    pruned = hub.cli("prune", "--days", "30")
    assert pruned.returncode == 0, pruned.stderr
    assert "deleted 3 notifications older than 30 days" in pruned.stdout

    assert await _unread(client, alice_token) == (1, [a_new])
    assert await _unread(client, bob_token) == (1, [b_new])
    again = hub.cli("prune", "--days", "30")
    assert "deleted 0 notifications" in again.stdout
    assert await _unread(client, alice_token) == (1, [a_new])


async def test_a_pruned_idempotency_key_publishes_again_and_a_recent_one_replays(hub, client):
    keys = create_product(hub)
    user, _ = await api_user(client, keys["sk_live"])
    body = {"title": "Invoice", "recipients": [{"user_id": user}]}

    async def send(key: str) -> list[int]:
        headers = {**bearer(keys["sk_live"]), "Idempotency-Key": key}
        answer = await client.post("/api/v1/notifications", headers=headers, json=body)
        assert answer.status_code in (200, 201), answer.text
        return [n["id"] for n in answer.json()["notifications"]]

    old_first, recent_first = await send("old-key"), await send("recent-key")
    await _age(hub, idempotency_keys, await _key_ids(hub, "old-key"), timedelta(hours=25))
    pruned = hub.cli("prune", "--days", "30")
    assert pruned.returncode == 0, pruned.stderr
    assert "and 1 idempotency keys older than 24 hours" in pruned.stdout

    assert await send("recent-key") == recent_first  # still replayed
    assert await send("old-key") != old_first  # forgotten: a new notification


async def _key_ids(hub, key: str) -> list[int]:
    async with _hub_database(hub) as db:
        rows = await db.fetch_all(
            sa.select(idempotency_keys.c.id).where(idempotency_keys.c.key == key)
        )
    return [row[0] for row in rows]
