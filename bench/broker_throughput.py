"""The broker alone: how many stream messages one hub process moves through one Redis or a Redis
Cluster, without HTTP, SQL or sockets (what the capacity model needs per Redis shard).

    python -m bench.broker_throughput --url redis://127.0.0.1:6379/0 \
        --url redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002

For each URL, one `infra.broker.Broker` (the hub's own) subscribes `--channels` streams, then
`--concurrency` tasks publish `--messages` messages in batches of `--batch` (as concurrent
bulk publish requests do), round-robin over the streams, and the same broker receives them.
It prints messages/s from the first publish to the last message received, this process's CPU
per message (publishing and receiving both), and each Redis node's CPU per message (from
`INFO cpu`, so the shards' share of the work shows). Nothing is asserted; start the cluster
yourself (three `redis-server --cluster-enabled yes` + `redis-cli --cluster create`).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from redis import asyncio as aioredis

from infra.broker import Broker, stream_message
from infra.redis_clients import is_cluster_url, parse_cluster_url


async def redis_nodes(url: str) -> list[aioredis.Redis]:
    """A plain client per Redis node: the one Redis, or every master of the cluster."""
    if not is_cluster_url(url):
        return [aioredis.Redis.from_url(url)]
    host, port = parse_cluster_url(url).nodes[0]
    seed = aioredis.Redis(host=host, port=port, decode_responses=True)
    try:
        table = await seed.execute_command("CLUSTER", "NODES", NEVER_DECODE=False)
    finally:
        await seed.aclose()
    text = table if isinstance(table, str) else table.decode()
    masters = [line.split()[1].split("@")[0] for line in text.splitlines() if "master" in line]
    return [
        aioredis.Redis(host=address.rsplit(":", 1)[0], port=int(address.rsplit(":", 1)[1]))
        for address in masters
    ]


async def redis_cpu(clients: list[aioredis.Redis]) -> list[float]:
    seconds = []
    for client in clients:
        info = await client.info("cpu")
        seconds.append(float(info["used_cpu_sys"]) + float(info["used_cpu_user"]))
    return seconds


async def run(url: str, messages: int, batch: int, channels: int, concurrency: int, size: int):
    broker = Broker(url, prefix=f"bench-{uuid.uuid4().hex[:8]}")
    received = 0
    done = asyncio.Event()

    def on_message(channel: str, raw: str) -> None:
        nonlocal received
        received += 1
        if received >= messages:
            done.set()

    async def on_gap(since: float) -> None:
        print(f"  gap reported (since {since:.3f}): messages may be lost")

    broker.listen(on_message, on_gap)
    await broker.start()
    streams = [f"notifications:1:live:{i}" for i in range(channels)]
    for stream in streams:
        await broker.subscribe(stream)
    await asyncio.sleep(1.0)  # subscriptions settle
    nodes = await redis_nodes(url)
    payload = "x" * size
    per_task = messages // concurrency // batch

    async def publisher(task: int) -> None:
        for b in range(per_task):
            base = (task * per_task + b) * batch
            pairs = [
                (streams[(base + i) % channels], stream_message(payload, base + i))
                for i in range(batch)
            ]
            assert await broker.publish_many(pairs)

    cpu_before, redis_before = time.process_time(), await redis_cpu(nodes)
    started = time.perf_counter()
    await asyncio.gather(*(publisher(t) for t in range(concurrency)))
    published = time.perf_counter() - started
    try:
        await asyncio.wait_for(done.wait(), 60)
    except TimeoutError:
        print(f"  only {received} of {messages} received")
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    redis_after = await redis_cpu(nodes)
    await broker.stop()
    for node in nodes:
        await node.aclose()
    shards = [after - before for before, after in zip(redis_before, redis_after, strict=True)]
    print(
        f"{url.split('@')[-1]}: {received}/{messages} in {elapsed:.2f} s "
        f"({received / elapsed:,.0f} msg/s delivered; publishing took {published:.2f} s); "
        f"hub process CPU {cpu / max(received, 1) * 1e6:.1f} µs/msg; Redis CPU per node "
        + ", ".join(f"{s / max(received, 1) * 1e6:.1f}" for s in shards)
        + " µs/msg"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="repeat to compare")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--channels", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--size", type=int, default=300, help="payload bytes")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    for _ in range(args.repeat):
        for url in args.url:
            asyncio.run(
                run(url, args.messages, args.batch, args.channels, args.concurrency, args.size)
            )


if __name__ == "__main__":
    main()
