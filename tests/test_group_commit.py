"""Group commit on the publish path, against a real hub on PostgreSQL and Redis.

Requests that arrive while a batch is being stored share the next transaction; each is
answered only after its own batch committed; a batch that fails fails every request in it
and publishes nothing; Idempotency-Key keeps its meaning inside and across batches. The
batches are made deterministic by holding a lock on `notifications` from the test: the first
request's transaction waits on it, and everything sent meanwhile queues for the next batch.
Which rows share a transaction is read from PostgreSQL's `xmin` (the inserting transaction).

Also here: live keys are cached per process, and a revoked key is refused at once by every
process (two hubs on one database and one Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import websockets

from tests.conftest import scratch_postgres, service_missing
from tests.support import HubServer, api_user, bearer, cable, create_product

SEND = "/api/v1/notifications"
POISON = "poison"  # a title the test database refuses (a CHECK constraint added below)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with scratch_postgres() as url:
        if url is None:
            service_missing("PostgreSQL (DATABASE_URL)")
        yield url


@pytest.fixture(scope="module")
def hub(tmp_path_factory, database_url, redis_url) -> Iterator[HubServer]:
    if redis_url is None:
        service_missing("Redis (REDIS_URL)")
    server = HubServer(
        workdir=tmp_path_factory.mktemp("group"),
        database_url=database_url,
        redis_url=redis_url,
    )
    server.start()

    async def poison() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                f"ALTER TABLE notifications ADD CONSTRAINT no_poison CHECK (title <> '{POISON}')"
            )
        finally:
            await conn.close()

    asyncio.run(poison())
    yield server
    server.stop()


@pytest.fixture
async def sql(database_url) -> AsyncIterator[asyncpg.Pool]:
    """Connections of the test's own (a pool: answers are checked concurrently); what they
    see is committed."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest.fixture
async def client(hub) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=hub.url, timeout=30, limits=limits) as http:
        yield http


@pytest.fixture
async def product(hub) -> dict[str, str]:
    return await asyncio.to_thread(create_product, hub)


@contextlib.asynccontextmanager
async def held_batch(database_url: str, sql: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold inserts into `notifications` until the block ends: the first batch that tries
    one waits, and requests sent meanwhile queue for the next batch. Call `blocked` inside to
    wait until a transaction waits on the lock."""
    locker = await asyncpg.connect(database_url)
    transaction = locker.transaction()
    await transaction.start()
    await locker.execute("LOCK TABLE notifications IN SHARE MODE")
    try:
        yield
    finally:
        await transaction.commit()
        await locker.close()


async def wait_until_blocked(sql: asyncpg.Pool) -> None:
    """Until a session of this database waits on a lock (the held first batch)."""
    for _ in range(500):
        waiting = await sql.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no transaction waited on the held lock")


def send(client: httpx.AsyncClient, sk: str, user_id: int, title: str, **headers: str):
    body = {"title": title, "recipients": [{"user_id": user_id}]}
    return client.post(SEND, headers={**bearer(sk), **headers}, json=body)


async def wait_until_queued(client: httpx.AsyncClient, count: int) -> None:
    """Until `count` publish requests wait for the next group commit (the hub's metrics)."""
    for _ in range(500):
        metrics = (await client.get("/metrics")).text
        if f"hub_publish_waiting {float(count)}" in metrics:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} requests never queued for a batch")


async def queue_behind_held_batch(
    client, sql, database_url, first, rest, queued: int
) -> tuple[httpx.Response, list[httpx.Response]]:
    """Send `first` (a coroutine factory) and, once its batch waits on the held lock, `rest`;
    release the lock once `queued` of them wait for the next batch; (first's answer, the
    others'). Requests with an Idempotency-Key do not queue (they wait on the lock)."""
    async with held_batch(database_url, sql):
        head = asyncio.ensure_future(first())
        await wait_until_blocked(sql)
        tail = [asyncio.ensure_future(request()) for request in rest]
        await wait_until_queued(client, queued)
        assert not head.done() and not any(t.done() for t in tail)
    return await head, list(await asyncio.gather(*tail))


async def test_concurrent_requests_share_one_transaction_and_answer_after_its_commit(
    client, sql, database_url, product
):
    sk = product["sk_live"]
    users = await asyncio.gather(*(api_user(client, sk) for _ in range(30)))
    twice, token = users[0]  # gets two notifications in the same batch
    tab = await cable(client.base_url.__str__().rstrip("/"), token)
    try:
        titles = [f"n-{i}" for i in range(len(users))] + ["n-again"]
        recipients = [u for u, _ in users] + [twice]
        seen: dict[int, asyncpg.Record] = {}

        async def checked(user_id: int, title: str) -> httpx.Response:
            response = await send(client, sk, user_id, title)
            if response.status_code == 201:
                # The answer came after the commit: a connection of our own sees the row.
                [item] = response.json()["notifications"]
                row = await sql.fetchrow(
                    "SELECT user_id, title, xmin::text AS tx FROM notifications WHERE id = $1",
                    item["id"],
                )
                assert row is not None, f"{title} answered before its commit"
                seen[item["id"]] = row
            return response

        held, answers = await queue_behind_held_batch(
            client,
            sql,
            database_url,
            lambda: checked(users[1][0], "held"),
            [lambda u=u, t=t: checked(u, t) for u, t in zip(recipients, titles, strict=True)],
            queued=len(titles),
        )
        assert held.status_code == 201, held.text
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        ids = [a.json()["notifications"][0]["id"] for a in answers]
        assert len(set(ids)) == len(ids)  # each request its own notification
        for id_, user_id, title in zip(ids, recipients, titles, strict=True):
            assert (seen[id_]["user_id"], seen[id_]["title"]) == (user_id, title)
        # All the queued requests went in one transaction, not the held one's.
        held_id = held.json()["notifications"][0]["id"]
        assert {seen[i]["tx"] for i in ids} == {seen[ids[0]]["tx"]} != {seen[held_id]["tx"]}
        # The user named twice in the batch counts both, and hears them in the order they
        # were stored (which of the two concurrent requests queued first is up to the wire).
        count = await sql.fetchval("SELECT count FROM unread_counts WHERE user_id = $1", twice)
        assert count == 2
        first = await tab.next_message("new_notification")
        second = await tab.next_message("new_notification")
        assert [first["unread_count"], second["unread_count"]] == [1, 2]
        heard = [first["notification"], second["notification"]]
        assert {n["title"] for n in heard} == {"n-0", "n-again"}
        assert heard[0]["id"] < heard[1]["id"]
    finally:
        await tab.close()


async def test_a_bulk_request_runs_beside_the_batches_not_behind_them(
    client, sql, database_url, product
):
    """A bulk request never queues for a batch: queued, it would hold every small request
    of every tenant behind it. It takes a transaction of its own."""
    sk = product["sk_live"]
    users = [u for u, _ in await asyncio.gather(*(api_user(client, sk) for _ in range(101)))]
    bulk = {"title": "bulk", "recipients": [{"user_id": u} for u in users]}
    async with held_batch(database_url, sql):
        small = asyncio.ensure_future(send(client, sk, users[0], "small"))
        await wait_until_blocked(sql)
        large = asyncio.ensure_future(client.post(SEND, headers=bearer(sk), json=bulk))
        for _ in range(500):  # until the bulk request waits on the lock itself
            waiting = await sql.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting >= 2:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the bulk request did not get a transaction of its own")
        assert "hub_publish_waiting 0.0" in (await client.get("/metrics")).text
    small_answer, large_answer = await small, await large
    assert small_answer.status_code == large_answer.status_code == 201, large_answer.text
    assert large_answer.json()["count"] == len(users)


async def test_a_failed_batch_fails_every_request_in_it_and_publishes_nothing(
    client, sql, database_url, product
):
    sk = product["sk_live"]
    users = await asyncio.gather(*(api_user(client, sk) for _ in range(6)))
    watcher, token = users[0]
    tab = await cable(client.base_url.__str__().rstrip("/"), token)
    try:
        doomed = [f"doomed-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
        held, answers = await queue_behind_held_batch(
            client,
            sql,
            database_url,
            lambda: send(client, sk, users[5][0], "held"),
            [
                *(
                    lambda u=u, t=t: send(client, sk, u, t)
                    for (u, _), t in zip(users[:5], doomed, strict=True)
                ),
                lambda: send(client, sk, users[1][0], POISON),
            ],
            queued=6,
        )
        assert held.status_code == 201, held.text
        for answer in answers:
            assert answer.status_code == 503, answer.text
            error = answer.json()["error"]
            assert error["code"] == "notification.not_stored" and error["message"]
            assert answer.headers["retry-after"] == "1"
        stored = await sql.fetchval(
            "SELECT count(*) FROM notifications WHERE title = ANY($1::text[])", [*doomed, POISON]
        )
        assert stored == 0
        counted = await sql.fetchval(
            "SELECT count(*) FROM unread_counts WHERE user_id = ANY($1::bigint[])",
            [u for u, _ in users[:5]],
        )
        assert counted == 0
        with pytest.raises(AssertionError):  # nothing of the failed batch was published
            await tab.next_message("new_notification", within=0.5)
        # The next request goes in a batch of its own and is delivered.
        again = await send(client, sk, watcher, "after")
        assert again.status_code == 201, again.text
        got = await tab.next_message("new_notification")
        assert (got["notification"]["title"], got["unread_count"]) == ("after", 1)
    finally:
        await tab.close()


async def test_idempotency_keys_inside_and_across_batches(client, sql, database_url, product):
    sk = product["sk_live"]
    (user, _), (other, _) = await asyncio.gather(api_user(client, sk), api_user(client, sk))
    key = f"k-{uuid.uuid4().hex}"
    plain = [f"plain-{uuid.uuid4().hex[:6]}-{i}" for i in range(4)]
    held, answers = await queue_behind_held_batch(
        client,
        sql,
        database_url,
        lambda: send(client, sk, other, "held"),
        [
            *(lambda: send(client, sk, user, "once", **{"Idempotency-Key": key}) for _ in range(3)),
            lambda: send(client, sk, user, "not the same", **{"Idempotency-Key": key}),
            *(lambda t=t: send(client, sk, other, t) for t in plain),
        ],
        queued=len(plain),
    )
    assert held.status_code == 201
    keyed, rest = answers[:4], answers[4:]
    assert all(a.status_code == 201 for a in rest)
    # One keyed request was stored; the others replay its answer or conflict with it.
    first = [a for a in keyed if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(first) == 1, [(a.status_code, a.text) for a in keyed]
    won_with_same_body = keyed.index(first[0]) < 3
    for answer in keyed:
        if answer is first[0]:
            continue
        same_body = keyed.index(answer) < 3
        if same_body == won_with_same_body:
            assert answer.status_code == 201 and answer.headers["idempotent-replayed"] == "true"
            assert answer.json() == first[0].json()
        else:
            assert answer.status_code == 409
            assert answer.json()["error"]["code"] == "idempotency.conflict"
    stored = await sql.fetchval(
        "SELECT count(*) FROM notifications WHERE user_id = $1 AND title <> 'held'", user
    )
    assert stored == 1
    # Across batches: the key stays taken once its batch committed.
    replay = await send(
        client,
        sk,
        user,
        "once" if won_with_same_body else "not the same",
        **{"Idempotency-Key": key},
    )
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first[0].json()


# -- live keys cached per process, revoked everywhere at once --------------------------------


@pytest.fixture
def twin_hubs(tmp_path: Path, database_url: str, redis_url: str | None) -> Iterator[tuple]:
    if redis_url is None:
        service_missing("Redis (REDIS_URL)")
    a = HubServer(tmp_path / "a", database_url, redis_url=redis_url)
    b = a.twin(tmp_path / "b")
    for hub in (a, b):
        hub.workdir.mkdir()
    try:
        a.start()
        b.start()
        yield a, b
    finally:
        a.stop()
        b.stop()


async def test_a_revoked_key_is_refused_at_once_by_every_process(twin_hubs):
    a, b = twin_hubs
    keys = await asyncio.to_thread(create_product, a)
    sk = keys["sk_live"]
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        user, _ = await api_user(on_a, sk)
        made = await on_a.post(
            "/api/v1/keys",
            headers=bearer(sk),
            json={"name": "job", "scopes": ["notifications:write"]},
        )
        assert made.status_code == 201, made.text
        job, job_id = made.json()["key"], made.json()["id"]
        # Both processes have used (and cached) the key.
        for http in (on_a, on_b, on_a, on_b):
            assert (await send(http, job, user, "before")).status_code == 201
        revoked = await on_a.delete(f"/api/v1/keys/{job_id}", headers=bearer(sk))
        assert revoked.status_code == 204
        for http in (on_b, on_a):
            refused = await send(http, job, user, "after")
            assert refused.status_code == 401, refused.text
        # A rotated secret key likewise, rotated through B and refused by A.
        listed = (await on_b.get("/api/v1/keys", headers=bearer(sk))).json()["keys"]
        [secret] = [k for k in listed if k["kind"] == "secret" and k["revoked_at"] is None]
        assert (await send(on_a, sk, user, "before")).status_code == 201
        rotated = await on_b.post(f"/api/v1/keys/{secret['id']}/rotate", headers=bearer(sk))
        assert rotated.status_code == 201, rotated.text
        assert (await send(on_a, sk, user, "after")).status_code == 401
        new_sk = rotated.json()["key"]
        for http in (on_a, on_b):
            assert (await send(http, new_sk, user, "new key")).status_code == 201


async def test_a_key_rotated_from_the_cli_is_refused_at_once_by_the_running_hub(hub, client):
    keys = await asyncio.to_thread(create_product, hub)
    sk = keys["sk_live"]
    user, _ = await api_user(client, sk)
    assert (await send(client, sk, user, "before")).status_code == 201  # the hub cached it
    rotated = await asyncio.to_thread(hub.cli, "products", "rotate-key", keys["slug"])
    assert rotated.returncode == 0, rotated.stderr
    assert (await send(client, sk, user, "after")).status_code == 401


async def test_a_products_new_origins_apply_at_once_in_every_process(twin_hubs):
    # The product a token names is cached per process like its keys: a change made through
    # one process must reach the other's cable at once, not when the cache entry runs out.
    a, b = twin_hubs
    keys = await asyncio.to_thread(create_product, a)
    sk = keys["sk_live"]
    app = "https://app.example.com"
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        allowed = await on_a.patch("/api/v1/product", headers=bearer(sk), json={"origins": [app]})
        assert allowed.status_code == 200, allowed.text
        _, token = await api_user(on_a, sk)
        url = a.url.replace("http://", "ws://") + f"/cable?token={token}"
        for _ in range(2):  # A has looked the product up (and kept it)
            async with websockets.connect(url, origin=app) as tab:
                assert json.loads(await tab.recv()) == {"type": "welcome"}
        moved = await on_b.patch(
            "/api/v1/product", headers=bearer(sk), json={"origins": ["https://new.example.com"]}
        )
        assert moved.status_code == 200, moved.text
        deadline = asyncio.get_running_loop().time() + 2  # the control message's trip
        while True:
            try:
                async with websockets.connect(url, origin=app) as tab:
                    await tab.recv()
            except websockets.InvalidStatus as refused:
                assert refused.response.status_code == 403
                break
            assert asyncio.get_running_loop().time() < deadline, "A kept the old origins"
            await asyncio.sleep(0.05)
