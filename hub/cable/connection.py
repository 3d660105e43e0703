"""One WebSocket of the cable: who it is, what it subscribed to, and how its frames go out.

A frame is written inline when nothing is waiting to be written (`hub.cable.eager`): most
sockets are idle most of the time, and a socket with no backlog needs no task and no queue.
Once a write has to wait (the transport is backed up: the client reads slowly), a task
finishes it and later frames queue behind it, so a broadcast never waits on one slow socket.
A client that lets the queue fill (it stopped reading) is told `too_slow` and dropped, so a
stuck client costs a bounded amount of memory.

The socket's reader (the task serving it, `hub.cable.endpoint`) is cancelled once the hub's
last frame (a disconnect reason) has gone out or a write failed: the hub ended the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from typing import TYPE_CHECKING

from starlette.websockets import WebSocket, WebSocketState

from hub.cable import eager
from hub.cable.bucket import TokenBucket
from hub.cable.protocol import DisconnectReason
from hub.ws_protocol import WRITE_NOW, WriteNow, text_frame
from infra.live_status import DELIVERIES
from infra.metrics import FRAMES_SENT, PUBLISH_TO_SEND

if TYPE_CHECKING:
    from channels.base import Channel

logger = logging.getLogger("hub.cable")

# How long a dropped client gets to take its last frames before the socket is closed.
CLOSE_GRACE_SECONDS = 3.0


class CableConnection:
    # Thousands of these live for hours: no per-instance dict, and the queue, the writer task
    # and the closed-waiter exist only while they are needed.
    __slots__ = (
        "_closed_waiter",
        "_closing",
        "_ended",
        "_max_queue",
        "_queue",
        "_write_now",
        "_writer",
        "actions",
        "env",
        "expires_at",
        "invalid_commands",
        "locale",
        "product_id",
        "rate_limit_told_at",
        "reader",
        "reader_stopped",
        "session_id",
        "subscriptions",
        "user_id",
        "websocket",
    )

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
        # Frames waiting behind a write that had to wait: (frame, publish time of the
        # notification it carries, if any). None while nothing waits.
        self._queue: deque[tuple[str, float | None]] | None = None
        # The task finishing a write that had to wait, and draining the queue after it.
        self._writer: asyncio.Task[None] | None = None
        # The server's direct write (hub.ws_protocol), where it offers one.
        self._write_now: WriteNow | None = websocket.scope.get("extensions", {}).get(WRITE_NOW)
        self._closing: DisconnectReason | None = None
        # True once the last frame went out (or a write failed): nothing more is written.
        self._ended = False
        self._closed_waiter: asyncio.Future[None] | None = None
        # The task reading this socket, cancelled when the hub ends it (set by the endpoint
        # while it reads), and whether that happened.
        self.reader: asyncio.Task[None] | None = None
        self.reader_stopped = False

    @property
    def user_key(self) -> tuple[int, str, int]:
        """The user of a product environment this socket belongs to."""
        return self.product_id, self.env, self.user_id

    # -- sending --------------------------------------------------------------------------

    def send(self, frame: str, published_at: float | None = None) -> None:
        """Write a frame now, or queue it behind a write that is waiting; a client whose queue
        is full is disconnected as too slow."""
        if self._closing is not None:
            return
        if self._writer is None:
            self._write(frame, published_at)
            return
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self._max_queue:
            self.disconnect(DisconnectReason.TOO_SLOW)
            return
        queue.append((frame, published_at))

    def disconnect(self, reason: DisconnectReason) -> None:
        """Send the reason's frame as the last thing this socket hears, then close it."""
        if self._closing is not None:
            return
        self._closing = reason
        if self._ended:
            return
        if self._writer is None:
            self._write(reason.frame, None)
            return
        # A slow client does not need the backlog, only the verdict, after the waiting write.
        self._queue = deque([(reason.frame, None)])

    @property
    def closing(self) -> bool:
        return self._closing is not None

    def _write(self, frame: str, published_at: float | None) -> None:
        write_now = self._write_now
        if write_now is not None and write_now(text_frame(frame)):
            FRAMES_SENT.inc()
            if published_at is not None:
                latency = time.time() - published_at
                PUBLISH_TO_SEND.observe(latency)
                DELIVERIES.record(self.product_id, latency)
            if self._closing is not None:
                self._end()
            return
        self._writer = eager.start(self._write_all(frame, published_at))

    async def _write_all(self, frame: str, published_at: float | None) -> None:
        """Write the frame, then whatever queued behind it; end the socket after its last frame
        (or a failed write)."""
        try:
            while True:
                await self.websocket.send_text(frame)
                FRAMES_SENT.inc()
                if published_at is not None:
                    latency = time.time() - published_at
                    PUBLISH_TO_SEND.observe(latency)
                    DELIVERIES.record(self.product_id, latency)
                if not self._queue:
                    break
                frame, published_at = self._queue.popleft()
        except Exception as exc:  # the peer went away; the reader notices too
            logger.debug("send to user %s failed: %s", self.user_id, exc)
            self._closing = self._closing or DisconnectReason.REMOTE
        finally:
            self._writer = None
            self._queue = None
        if self._closing is not None:
            self._end()

    def _end(self) -> None:
        self._ended = True
        if self._closed_waiter is not None and not self._closed_waiter.done():
            self._closed_waiter.set_result(None)
        reader = self.reader
        # A reader that ends the socket itself (e.g. too many bad frames) sees `closing`.
        if reader is not None and reader is not asyncio.current_task():
            self.reader = None
            self.reader_stopped = True
            reader.cancel()

    async def wait_closed(self) -> None:
        """Until the last frame has gone out (or a write failed)."""
        if self._ended:
            return
        if self._closed_waiter is None:
            self._closed_waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._closed_waiter)

    def stop_writing(self) -> None:
        """Give up on a write still waiting (the socket is being closed)."""
        if self._writer is not None:
            self._writer.cancel()

    async def close(self) -> None:
        if self.websocket.application_state is WebSocketState.DISCONNECTED:
            # Already closed, or the peer went away: closing again only raises, and that
            # exception's traceback would hold this socket's objects in a reference cycle.
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.websocket.close(), timeout=CLOSE_GRACE_SECONDS)
