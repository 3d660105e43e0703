"""How a console page answers: templates (Jinja2, autoescaped), the security headers every
page carries, HTML refusals instead of the API's JSON errors, and URL-encoded forms.

Pages are plain server-rendered HTML with no script at all, so the Content-Security-Policy
allows none; forms post to the console itself only.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jinja2
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from infra.errors import HubError

TEMPLATES_DIR = Path(__file__).with_name("templates")
STATIC_DIR = Path(__file__).with_name("static")
FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 200

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Invitation links carry their token in the path: never send it on to another site.
    "Referrer-Policy": "same-origin",
    # Pages show account data and, once, secrets: no cache keeps a copy.
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


class Refused(Exception):
    """Answer the page with an HTML error page of `status` saying `message`."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class SignInRequired(Exception):
    """No live console session: the page sends the browser to the sign-in form."""


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    return templates.TemplateResponse(request, template, context or {}, status_code=status)


def redirect(url: str) -> Response:
    # 303: the browser follows a POST's answer with a GET.
    return RedirectResponse(url, status_code=303)


def _refusal(request: Request, status: int, message: str, headers: Mapping[str, str]) -> Response:
    response = render(request, "error.html", {"status": status, "message": message}, status)
    response.headers.update(headers)
    return response


_HUB_ERROR_TEXT = {
    401: "Sign in first.",
    403: "You may not do this.",
    404: "Not found.",
    429: "Too many attempts: wait a moment and try again.",
}

Page = Callable[[Request], Awaitable[Response]]


def page(handler: Page) -> Page:
    """A console page: API credentials refused, refusals as HTML, the security headers."""

    @functools.wraps(handler)
    async def run(request: Request) -> Response:
        try:
            if "authorization" in request.headers or "x-publishable-key" in request.headers:
                # The console takes its cookie only: an API key or token here is a mistake
                # (or someone probing), never a way in.
                raise Refused(403, "API credentials do not work on the console.")
            response = await handler(request)
        except SignInRequired:
            response = redirect("/console/sign-in")
        except Refused as refused:
            response = _refusal(request, refused.status, refused.message, refused.headers)
        except HubError as error:
            text = _HUB_ERROR_TEXT.get(error.status, "The request was refused.")
            response = _refusal(request, error.status, text, error.headers or {})
        response.headers.update(SECURITY_HEADERS)
        return response

    return run


async def read_form(request: Request) -> dict[str, str]:
    """The URL-encoded form of a POST (the console's forms are nothing else); 400 or 415
        pages for a body that is not one (an empty body is an empty form: a button-only form
    sent by a script). A field given twice keeps its last value."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    declared = request.headers.get("content-length", "0")
    if not (declared.isascii() and declared.isdigit()) or int(declared) > FORM_MAX_BYTES:
        raise Refused(413, "The form is too large.")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > FORM_MAX_BYTES:
                raise Refused(413, "The form is too large.")
    except ClientDisconnect:
        # The browser left mid-form: nothing was changed, and it is not a fault to log.
        raise Refused(400, "The form did not arrive whole.") from None
    if content_type != "application/x-www-form-urlencoded" and (body or content_type):
        raise Refused(415, "Send the form as application/x-www-form-urlencoded.")
    try:
        text = bytes(body).decode("ascii")
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=FORM_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "The form could not be read.") from None
    form = dict(pairs)
    if any("\x00" in value or "\x00" in name for name, value in form.items()):
        raise Refused(400, "The form holds a NUL character.")
    return form
