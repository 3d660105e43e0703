"""A request id for every HTTP request and WebSocket, in its log lines and its response.

A caller's `X-Request-Id` is kept when it is a plain token (so a load balancer's or a
client's id ties their logs to ours); anything else is replaced by a fresh id.
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.logs import redact, request_id

HEADER = "X-Request-Id"
_ACCEPTED = re.compile(r"[A-Za-z0-9._-]{1,64}")


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-Id` if it is a plain token, else a fresh one. An id shaped
    like a credential (an integration that sends its key there) is replaced too: the id goes
    into every log line of the request, and a cable socket's for its whole life."""
    offered = Headers(scope=scope).get(HEADER, "")
    if _ACCEPTED.fullmatch(offered) and redact(offered) == offered:
        return offered
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        current = request_id_of(scope)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[HEADER] = current
            await send(message)

        token = request_id.set(current)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
