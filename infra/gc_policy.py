"""The hub process's collector policy: objects that live on are frozen, so no collection walks them.

Why. A full (generation 2) collection walks every object the collector tracks. An idle
subscribed socket keeps ~185 of them alive (its tasks, coroutines, uvicorn's and Starlette's
WebSocket state, the cable's connection); the process starts with ~140,000 (modules, classes,
SQLAlchemy tables). Measured on the 2-core development machine (PostgreSQL + Redis, sockets in a
separate client process): a full collection took ~0.15 s with no sockets and 0.5-0.9 s with
2,000, and CPython starts one whenever the old generation grew by a quarter, so a hub serving
thousands of sockets stalled every socket for most of a second, again and again. Thresholds
cannot fix that: they change how often a full collection runs, not how long it takes.

What. `gc.freeze()` moves every tracked object into a permanent generation that collections
skip. The policy freezes

- at start-up, after a full collection: the whole process as it starts serving;
- then after every generation-1 collection (checked every `interval` seconds): a full
  collection first, so that only live objects are frozen, then `gc.freeze()`. That collection
  walks only what is not frozen yet: what the generation-1 collection just moved to the old
  generation (at most a few thousand objects: the young generations' thresholds bound it) and
  the young objects born since. Its pause is that of a generation-1 collection, whatever the
  number of open sockets.

A fixed period instead (freeze once a second) was measured too: at 5,000 idle sockets each
second's newborns that lived on (~33,000 objects, mostly the futures and coroutines the
sockets' loops wait on, re-created after every ping) made its collection 35 ms of CPU.

Collections stay automatic and their thresholds unchanged: between ticks they too walk only
what is not frozen.

The cost, and what it asks of the code. Frozen objects are still freed by reference counting
(a closed socket's objects leave the frozen set as they die), but a reference cycle among
objects that were alive at a freeze is never collected: it leaks. So sockets and requests must
die without cycles (three did not: the cable closing an already closed socket, whose exception
held the socket's ~100 objects in a cycle, the HTTP parser of a connection upgraded to a
WebSocket, which held its protocol, and websockets' `ServerProtocol`, whose parser generator
holds it: hub/ws_protocol.py ends that parser when the connection is lost).
`tests/test_gc_policy.py` connects and closes thousands of sockets and checks that the tracked
and frozen counts return to their baseline; a leak shows in `hub_gc_frozen_objects` growing
while `hub_cable_connections` does not.

Pauses are measured by `infra.metrics.GC_PAUSES` (`hub_gc_pause_seconds…`), installed here
once start-up is done, so that a serving hub always reports them.
"""

from __future__ import annotations

import asyncio
import gc
import logging

from infra.metrics import GC_PAUSES
from infra.tasks import cancel_and_wait

logger = logging.getLogger("hub.gc")

# How often the policy looks for a generation-1 collection to follow. Short, so that little is
# promoted in between (checking is one `gc.get_count()`).
FREEZE_INTERVAL_SECONDS = 0.1


def _reached_old_generation() -> bool:
    """A generation-1 collection ran since the last full one: survivors moved to the old
    generation (`gc.get_count()[2]` counts those collections)."""
    return gc.get_count()[2] > 0


def collect_and_freeze() -> None:
    """Free what is garbage among the objects not yet frozen, then freeze the rest."""
    gc.collect(2)
    gc.freeze()


class CollectorPolicy:
    """Freezes the process at start, then what lives on after each generation-1 collection."""

    def __init__(self, interval: float = FREEZE_INTERVAL_SECONDS) -> None:
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        collect_and_freeze()
        logger.debug("froze %d objects at start-up", gc.get_freeze_count())
        # From here: the pauses that clients can feel, not the one start-up collection.
        GC_PAUSES.install()
        self._task = asyncio.create_task(self._freeze_periodically(), name="gc-freeze")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _freeze_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if _reached_old_generation():
                collect_and_freeze()
