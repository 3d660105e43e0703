"""The Channel base class: what an ActionCable channel can do, and nothing more.

A channel is one subscription of one connection. Subclass it, set `name` (the `channel` of
the client's identifier) and `actions` (the client may `perform` only these), then use
`stream_from` in `subscribed` to receive broadcasts, `transmit` to answer this subscription
alone, and `reject` to refuse it. A channel that needs a service takes it in `__init__`; the
app registers a `ChannelFactory` (e.g. the class with its service bound by `functools.partial`)
under the channel's name, so no channel looks its collaborators up at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from infra.errors import HubError


class ChannelConnection(Protocol):
    """What a channel sees of its connection (`hub.cable.connection.CableConnection`)."""

    user_id: int
    product_id: int
    env: str
    locale: str


class ChannelHost(Protocol):
    """What the cable offers a channel: streams and frames for one subscription."""

    async def stream_from(self, channel: Channel, stream: str, recover: Any = None) -> None: ...

    def transmit(self, channel: Channel, message: Any) -> None: ...


class Channel:
    """One subscription; see the module's docstring."""

    # One per subscribed socket, thousands at once: no per-instance dict unless a subclass
    # adds one (a subclass with state of its own declares its own `__slots__`).
    __slots__ = ("connection", "host", "identifier", "params", "rejected", "streams")

    name: ClassVar[str] = ""
    actions: ClassVar[frozenset[str]] = frozenset()
    # Send each message as a JSON string inside the frame (what the Kiket seed's client reads)
    # instead of as a JSON value; the cable does the encoding, NaN-safe, for both.
    message_as_json_string: ClassVar[bool] = False

    def __init__(
        self, host: ChannelHost, connection: ChannelConnection, identifier: str, params: dict
    ) -> None:
        self.host = host
        self.connection = connection
        self.identifier = identifier
        self.params = params
        self.streams: tuple[str, ...] = ()  # almost always one: no list per subscription
        self.rejected = False

    async def subscribed(self) -> None:
        """Called once on subscribe; stream_from() here, or reject()."""

    async def unsubscribed(self) -> None:
        """Called when the client unsubscribes or the connection closes."""

    async def stream_from(self, stream: str, recover: Any = None) -> None:
        self.streams += (stream,)
        await self.host.stream_from(self, stream, recover)

    def transmit(self, message: Any) -> None:
        self.host.transmit(self, message)

    def reject(self) -> None:
        self.rejected = True

    async def perform(self, action: str, data: dict[str, Any]) -> bool:
        """Run `action` if it is one of `actions`; False for anything else.

        A `HubError` (e.g. a notification that is not the user's) is answered on this
        subscription as `{"action": "error", "for": action, "code": …}`.
        """
        if action not in self.actions:
            return False
        try:
            await getattr(self, action)(data)
        except HubError as exc:
            self.transmit_error(action, exc.code)
        return True

    def transmit_error(self, action: str, code: str) -> None:
        self.transmit({"action": "error", "for": action, "code": code})


# Builds the channel for one subscription: (host, connection, identifier, params) → channel.
ChannelFactory = Callable[[ChannelHost, ChannelConnection, str, dict], Channel]
