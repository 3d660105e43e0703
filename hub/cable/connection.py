"""One WebSocket of the cable: who it is, what it subscribed to, and its bounded send queue.

Frames are queued, never sent inline: a broadcast must not wait on one slow socket. A writer
task drains the queue; a client that lets the queue fill (it stopped reading) is told
`too_slow` and dropped, so a stuck client costs a bounded amount of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketState

from hub.cable.bucket import TokenBucket
from hub.cable.protocol import DisconnectReason
from infra.metrics import FRAMES_SENT, PUBLISH_TO_SEND

if TYPE_CHECKING:
    from channels.base import Channel

logger = logging.getLogger("hub.cable")

# How long a dropped client gets to take its last frames before the socket is closed.
CLOSE_GRACE_SECONDS = 3.0


class CableConnection:
    def __init__(
        self,
        websocket: WebSocket,
        *,
        user_id: int,
        product_id: int,
        env: str,
        session_id: str,
        locale: str,
        expires_at: float,
        max_queue: int,
        actions: TokenBucket,
    ) -> None:
        self.websocket = websocket
        self.user_id = user_id
        self.product_id = product_id
        self.env = env
        self.session_id = session_id
        self.locale = locale
        self.expires_at = expires_at
        self.subscriptions: dict[str, Channel] = {}
        self.invalid_commands = 0
        # The socket's action rate, and when it was last told it exceeded it.
        self.actions = actions
        self.rate_limit_told_at = float("-inf")
        self._max_queue = max_queue
        # (frame, publish time of the notification it carries, if any)
        self._queue: deque[tuple[str, float | None]] = deque()
        self._ready = asyncio.Event()
        self._closing: DisconnectReason | None = None
        self.closed = asyncio.Event()

    @property
    def user_key(self) -> tuple[int, str, int]:
        """The user of a product environment this socket belongs to."""
        return self.product_id, self.env, self.user_id

    # -- sending --------------------------------------------------------------------------

    def send(self, frame: str, published_at: float | None = None) -> None:
        """Queue a frame; a client whose queue is full is disconnected as too slow."""
        if self._closing is not None:
            return
        if len(self._queue) >= self._max_queue:
            self.disconnect(DisconnectReason.TOO_SLOW)
            return
        self._queue.append((frame, published_at))
        self._ready.set()

    def disconnect(self, reason: DisconnectReason) -> None:
        """Send the reason's frame as the last thing this socket hears, then close it."""
        if self._closing is not None:
            return
        self._closing = reason
        self._queue.clear()  # a slow client does not need the backlog, only the verdict
        self._queue.append((reason.frame, None))
        self._ready.set()

    @property
    def closing(self) -> bool:
        return self._closing is not None

    async def write_loop(self) -> None:
        """Drain the queue into the socket until a disconnect frame has gone out."""
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                while self._queue:
                    frame, published_at = self._queue.popleft()
                    await self.websocket.send_text(frame)
                    FRAMES_SENT.inc()
                    if published_at is not None:
                        PUBLISH_TO_SEND.observe(time.time() - published_at)
                if self._closing is not None:
                    break
        except Exception as exc:  # the peer went away; the reader notices too
            logger.debug("send to user %s failed: %s", self.user_id, exc)
        finally:
            self.closed.set()

    async def close(self) -> None:
        if self.websocket.application_state is WebSocketState.DISCONNECTED:
            # Already closed, or the peer went away: closing again only raises, and that
            # exception's traceback would hold this socket's objects in a reference cycle.
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(), timeout=CLOSE_GRACE_SECONDS)
