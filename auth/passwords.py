"""Password hashing with argon2id, off the event loop.

Argon2 is deliberately slow (tens of milliseconds and 19 MiB per hash); running it in the
event loop would stall every WebSocket of the process, so it runs in a bounded thread pool.

The pool's threads also run at a lower CPU priority than the event loop (Linux keeps a nice
value per thread). Off the loop is not enough when a login storm keeps every core busy: the
loop thread then waits for a CPU like any hashing thread, and every socket's latency grows
with the storm. With the hashing threads niced, the loop gets a core whenever it is runnable
and logins take the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from concurrent.futures import ThreadPoolExecutor

from passlib.hash import argon2

# The hash compared against when the account does not exist, so that "unknown email" and
# "wrong password" take the same time.
_DUMMY_PASSWORD = "not-a-real-password-just-for-timing"  # noqa: S105

# The length a new password must have (registration and reset alike).
PASSWORD_MIN = 8
PASSWORD_MAX = 128

# Added to the nice value of each hashing thread (0 is the loop's; 19 the lowest priority).
HASH_THREAD_NICENESS = 10


def _lower_thread_priority() -> None:
    # os.nice acts on the calling thread on Linux; elsewhere (or when refused) hashing simply
    # keeps the process' priority.
    with contextlib.suppress(OSError, AttributeError):
        os.nice(HASH_THREAD_NICENESS)


class PasswordHasher:
    def __init__(self, *, memory_kib: int, time_cost: int, parallelism: int, threads: int) -> None:
        self._scheme = argon2.using(
            type="ID", memory_cost=memory_kib, rounds=time_cost, parallelism=parallelism
        )
        # Load the argon2 backend now: passlib loads it lazily on first use, and two threads
        # doing that at once fail ("failed to replace lazy loader"): the first concurrent
        # registrations after a start answered 500.
        self._scheme.get_backend()
        self._pool = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2", initializer=_lower_thread_priority
        )
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self._scheme.hash, password)

    async def verify(self, password: str, stored_hash: str | None) -> bool:
        """True when `password` matches; an absent hash still costs one full verification."""
        if stored_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash(_DUMMY_PASSWORD)
            await self._run(self._scheme.verify, password, self._dummy_hash)
            return False
        try:
            return await self._run(self._scheme.verify, password, stored_hash)
        except ValueError:  # not an argon2 hash we understand
            return False

    async def _run(self, fn, *args):  # noqa: ANN001, ANN202
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
