"""Reading requests safely: JSON bodies, their fields, query strings and paths.

`read_json` refuses a wrong content type, an oversized, malformed, non-finite, too deeply
nested body or one with NUL / unpaired surrogates before a handler sees it (the declared body
types of `infra.bodies` then check its fields); `path_id` reads a row id from the path;
`InputCharactersMiddleware` refuses NUL in any path or query parameter before routing, so
no handler has to remember to.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from infra import jsonsafe
from infra.errors import HubError, error_response
from infra.ids import MAX_ROW_ID, parse_id


async def read_json(request: Request, max_bytes: int) -> dict[str, Any]:
    """The body as a JSON object, or a `HubError` (415, 413 or 400) that changes nothing.

    400 `request.malformed_json`: not UTF-8 JSON, NaN/Infinity, or nested deeper than
    `jsonsafe.MAX_DEPTH`; 400 `request.invalid_characters`: NUL or an unpaired surrogate in
    any key or string."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise HubError(415, "request.unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and (
        not (declared.isascii() and declared.isdigit()) or int(declared) > max_bytes
    ):
        raise HubError(413, "request.too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise HubError(413, "request.too_large")
    except ClientDisconnect:
        # The client left before sending its whole body: nothing to do, and not a bug to log.
        raise HubError(400, "request.malformed_json") from None
    try:
        data = jsonsafe.loads(body)
    except jsonsafe.UnsafeJSON as exc:
        characters = exc.reason == "characters"
        raise HubError(
            400, "request.invalid_characters" if characters else "request.malformed_json"
        ) from None
    if not isinstance(data, dict):
        raise HubError(400, "request.invalid_body")
    return data


def path_id(request: Request, name: str, missing: str, maximum: int = MAX_ROW_ID) -> int:
    """The id in path parameter `name` (`infra.ids.parse_id`); 404 `missing` for anything
    else, so a path that names no row answers like one whose row is gone."""
    return parse_id(
        request.path_params[name], maximum=maximum, error=lambda: HubError(404, missing)
    )


def _has_nul(scope: Scope) -> bool:
    query = scope.get("query_string", b"").replace(b"+", b" ")
    return "\x00" in scope.get("path", "") or b"\x00" in unquote_to_bytes(query)


class InputCharactersMiddleware:
    """400 `request.invalid_characters` for NUL (`%00`) in the path or the query string.

    Starlette decodes both with U+FFFD for invalid UTF-8, so NUL is the one character that
    survives decoding and that PostgreSQL refuses in text; one check here covers every route,
    present and future. (Header values cannot carry NUL: the HTTP parser refuses them.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_nul(scope):
            request = Request(scope, receive)
            response = error_response(request, HubError(400, "request.invalid_characters"))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
