"""One socket's side of the protocol: its commands in, its frames out (a channel's `ChannelHost`).

Bad frames (not strict JSON — see `protocol` —, unknown command or identifier, oversized) are
counted and ignored; a connection that keeps sending them is closed with `invalid_request`.
Nothing one connection sends can reach another connection's state.

Every client's share is bounded (`CableLimits`): subscriptions per socket and identifier size
(over them: `reject_subscription`, counted like a bad frame), and actions per socket (a token
bucket: an action over the rate is dropped and answered, at most once a second, with the
channel's `{"action":"error","for":…,"code":"rate_limited"}`, and the socket's reader pauses
for one token's time, so a flood is read at about twice the action rate). Subscribes (new,
repeated or rejected) and unsubscribes draw on the same bucket but are never dropped (the JS
client needs their answer): the reader waits for their token instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from channels.base import Channel, ChannelFactory
from hub.cable.connection import CableConnection
from hub.cable.protocol import (
    DisconnectReason,
    FrameError,
    confirm_subscription,
    parse_action,
    parse_command,
    parse_identifier,
    reject_subscription,
    transmission,
)
from hub.cable.registry import CableRegistry, Recover
from infra.errors import HubError
from infra.metrics import CABLE_ACTIONS_RATE_LIMITED
from infra.settings import CableLimits

logger = logging.getLogger("hub.cable")

MAX_INVALID_COMMANDS = 20
# A flooding socket hears `rate_limited` at most this often.
RATE_LIMIT_NOTICE_SECONDS = 1.0


class CableHost:
    """The per-connection side of the protocol: commands in, frames out (a `ChannelHost`)."""

    __slots__ = ("channels", "connection", "limits", "registry")

    def __init__(
        self,
        registry: CableRegistry,
        connection: CableConnection,
        limits: CableLimits,
        channels: Mapping[str, ChannelFactory],
    ) -> None:
        self.registry = registry
        self.connection = connection
        self.limits = limits
        self.channels = channels

    # ChannelHost ---------------------------------------------------------------------------

    async def stream_from(self, channel: Channel, stream: str, recover: Recover | None) -> None:
        await self.registry.join(stream, self.connection, channel.identifier, recover)

    def transmit(self, channel: Channel, message: Any) -> None:
        self.connection.send(
            transmission(channel.identifier, message, as_json_string=channel.message_as_json_string)
        )

    # commands ------------------------------------------------------------------------------

    def invalid(self, why: str) -> None:
        connection = self.connection
        connection.invalid_commands += 1
        logger.debug("invalid cable command from user %s: %s", connection.user_id, why)
        if connection.invalid_commands >= MAX_INVALID_COMMANDS:
            connection.disconnect(DisconnectReason.INVALID_REQUEST)

    async def handle(self, text: str) -> None:
        try:
            command = parse_command(text)
        except FrameError as exc:
            self.invalid(str(exc))
            return
        if command.kind == "subscribe":
            await self.subscribe(command.identifier)
        elif command.kind == "unsubscribe":
            await self.unsubscribe(command.identifier)
        else:
            await self.message(command.identifier, command.data)

    async def subscribe(self, identifier: str) -> None:
        # Every subscribe draws on the action budget before it is answered, whatever the
        # answer: a duplicate's confirmation or a rejection is as cheap to ask for as a new
        # subscription, and a free answer would be a way around the budget.
        await self._pace()
        subscriptions = self.connection.subscriptions
        if identifier in subscriptions:
            # The JS client retries subscribe until confirmed: confirm again, change nothing.
            self.connection.send(confirm_subscription(identifier))
            return
        if (
            len(subscriptions) >= self.limits.max_subscriptions
            or len(identifier.encode()) > self.limits.max_identifier_bytes
        ):
            self.invalid("over the subscription limits")
            self.connection.send(reject_subscription(identifier))
            return
        parsed = parse_identifier(identifier)
        factory = self.channels.get(parsed[0]) if parsed is not None else None
        if parsed is None or factory is None:
            self.connection.send(reject_subscription(identifier))
            return
        name, params = parsed
        channel = factory(self, self.connection, identifier, params)
        subscriptions[identifier] = channel
        try:
            await channel.subscribed()
        except Exception:
            logger.exception("%s.subscribed failed", name)
            channel.reject()
        if channel.rejected:
            await self._drop(identifier)
            self.connection.send(reject_subscription(identifier))
            return
        self.connection.send(confirm_subscription(identifier))

    async def unsubscribe(self, identifier: str) -> None:
        if identifier not in self.connection.subscriptions:
            self.invalid("unsubscribe from an unknown identifier")
            return
        await self._pace()
        await self._drop(identifier)

    async def _pace(self) -> None:
        """Wait for this socket's next token: subscription churn is slowed, never dropped."""
        delay = self.connection.actions.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    async def _drop(self, identifier: str) -> None:
        channel = self.connection.subscriptions.pop(identifier)
        for stream in channel.streams:
            await self.registry.leave(stream, self.connection, identifier)
        with contextlib.suppress(Exception):
            await channel.unsubscribed()

    async def message(self, identifier: str, data: Any) -> None:
        channel = self.connection.subscriptions.get(identifier)
        if channel is None:
            self.invalid("message for an unknown identifier")
            return
        try:
            action, payload = parse_action(data)
        except FrameError as exc:
            self.invalid(str(exc))
            return
        if not self.connection.actions.take():
            await self._rate_limited(channel, action)
            return
        try:
            if not await channel.perform(action, payload):
                self.invalid(f"unknown action {action[:40]!r}")
        except HubError as exc:
            self.invalid(f"{action[:40]}: {exc.code}")

    async def _rate_limited(self, channel: Channel, action: str) -> None:
        """Drop the action, say so (at most once a second), and pause this socket's reader for
        one token's time: a flood is read at about twice the action rate, not at wire speed
        (the client's sends back up in TCP instead of in the hub's CPU).

        A flood does not end the socket: closing it would make the hub read the flood's whole
        TCP backlog to find the client's close frame (measured: other users' p99 from 60 ms
        to ~1 s), while a throttled socket costs almost nothing."""
        connection = self.connection
        CABLE_ACTIONS_RATE_LIMITED.inc()
        now = time.monotonic()
        if now - connection.rate_limit_told_at >= RATE_LIMIT_NOTICE_SECONDS:
            connection.rate_limit_told_at = now
            channel.transmit_error(action[:40], "rate_limited")
        await asyncio.sleep(1 / connection.actions.rate)

    async def close(self) -> None:
        for identifier in list(self.connection.subscriptions):
            await self._drop(identifier)
