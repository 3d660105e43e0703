"""The password hasher on its own: argon2id in a thread pool, safe from the first call."""

from __future__ import annotations

import asyncio
import subprocess
import sys

SCRIPT = """
import asyncio
from auth.passwords import PasswordHasher

async def main():
    hasher = PasswordHasher(memory_kib=19456, time_cost=2, parallelism=1, threads=4)
    hashes = await asyncio.gather(*(hasher.hash(f"password-{i}") for i in range(8)))
    checks = await asyncio.gather(
        *(hasher.verify(f"password-{i}", h) for i, h in enumerate(hashes)),
        hasher.verify("wrong", hashes[0]),
        hasher.verify("anything", None),
    )
    hasher.close()
    print(all(h.startswith("$argon2id$") for h in hashes), checks)

asyncio.run(main())
"""


def test_concurrent_first_use_in_a_fresh_process():
    # A fresh interpreter: the backend must not have been loaded by another test first.
    # (passlib's lazy backend loading raced when two threads hashed first at once.)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True " + str([True] * 8 + [False, False])


def test_hashing_leaves_the_event_loop_free():
    from auth.passwords import PasswordHasher

    async def scenario() -> int:
        hasher = PasswordHasher(memory_kib=19456, time_cost=2, parallelism=1, threads=2)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.gather(*(hasher.hash("x") for _ in range(6)))
        task.cancel()
        hasher.close()
        return ticks

    # Six hashes take well over 50 ms; a blocked loop would not have ticked meanwhile.
    assert asyncio.run(scenario()) >= 5


def test_hashing_threads_yield_the_cpu_to_the_event_loop():
    # Run in a fresh process: os.nice cannot be undone without privileges, and the check must
    # compare a hashing thread with the loop's own thread, not with an earlier test's pool.
    script = """
import asyncio, os
from auth.passwords import HASH_THREAD_NICENESS, PasswordHasher

async def main():
    hasher = PasswordHasher(memory_kib=1024, time_cost=1, parallelism=1, threads=2)
    loop_nice = os.getpriority(os.PRIO_PROCESS, 0)
    pool_nice = await hasher._run(os.getpriority, os.PRIO_PROCESS, 0)
    await hasher.hash("still hashes")
    hasher.close()
    print(loop_nice, pool_nice, os.getpriority(os.PRIO_PROCESS, 0), HASH_THREAD_NICENESS)

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    loop_before, pool, loop_after, niceness = map(int, result.stdout.split())
    assert pool == min(19, loop_before + niceness)
    assert loop_after == loop_before  # only the hashing threads were lowered
