"""HTTP API of notifications.

Server side: `POST /api/v1/notifications` to one recipient or up to 1000 (`notifications:write`)
and `GET /api/v1/users/{id}/notifications` (`notifications:read`), with a secret or restricted
key — or a workspace token / OAuth token, which reach members of their organization only.
User side (access token): list, unread count, mark one read, mark all read.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.accounts import resolve_recipients
from auth.session_tokens import AccessContext
from auth.transport import USER_TOKEN, server_or_org_key
from infra import jsonsafe
from infra.errors import FieldError, HubError, validation_failed
from infra.http import Fields, read_json
from infra.i18n import negotiate_locale
from infra.ids import MAX_BIGINT_ID, MAX_ROW_ID, parse_id
from notifications.publish import MAX_RECIPIENTS, request_fingerprint
from notifications.scope import UserScope
from notifications.service import NotificationService

RECIPIENT_KEYS = ("user_id", "email", "external_id")
MAX_DATA_BYTES = 16 * 1024
PAGE_DEFAULT, PAGE_MAX = 50, 200


def _service(request: Request) -> NotificationService:
    return request.app.state.services.notifications


def _recipient_names(fields: Fields) -> list[tuple[str, Any]]:
    """The recipients a publish request names, as (key, value) pairs, validated."""
    body = fields.body
    if "recipients" not in body:
        named = [k for k in RECIPIENT_KEYS if body.get(k) is not None]
        if len(named) != 1:
            fields.error("recipients", "field.one_recipient_key")
            return []
        entries: list[Any] = [{named[0]: body[named[0]]}]
    else:
        entries = body["recipients"]
        if not isinstance(entries, list) or not entries:
            fields.error("recipients", "field.required")
            return []
        if len(entries) > MAX_RECIPIENTS:
            fields.error("recipients", "field.too_many", max=MAX_RECIPIENTS)
            return []
    names: list[tuple[str, Any]] = []
    for index, entry in enumerate(entries):
        keys = [k for k in RECIPIENT_KEYS if isinstance(entry, dict) and entry.get(k) is not None]
        if len(keys) != 1 or len(entry) != 1:
            fields.error(f"recipients[{index}]", "field.one_recipient_key")
            continue
        value = entry[keys[0]]
        valid = (
            isinstance(value, int) and not isinstance(value, bool)
            if keys[0] == "user_id"
            else isinstance(value, str) and 0 < len(value) <= 320
        )
        if not valid:
            fields.error(f"recipients[{index}]", "field.one_recipient_key")
            continue
        names.append((keys[0], value))
    return names


def _content(fields: Fields) -> dict[str, Any]:
    content = {
        "title": fields.string("title", max_length=200),
        "message": fields.string("message", required=False, max_length=5000) or "",
        "url": fields.string("url", required=False, max_length=2000),
        "type": fields.string("type", required=False, max_length=64),
        "data": fields.body.get("data"),
    }
    data = content["data"]
    if data is not None:
        if not isinstance(data, dict):
            fields.error("data", "field.not_object")
        elif len(jsonsafe.dumps(data).encode()) > MAX_DATA_BYTES:
            fields.error("data", "field.too_long", max=MAX_DATA_BYTES)
    return content


async def send_notifications(request: Request) -> Response:
    key = await server_or_org_key("notifications:write")(request)
    body = await read_json(request, request.app.state.services.settings.max_body_bytes * 4)
    fields = Fields(body)
    names = _recipient_names(fields)
    content = _content(fields)
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not idempotency_key.strip():
        fields.error("Idempotency-Key", "field.required")  # sent, but empty: no key to honour
    elif idempotency_key is not None and len(idempotency_key) > 255:
        fields.error("Idempotency-Key", "field.too_long", max=255)
    fields.check()

    service = _service(request)
    found = await resolve_recipients(
        service.db,
        key.product.id,
        key.env,
        # An id beyond the column's range names nobody (PostgreSQL would refuse the query).
        user_ids=[v for k, v in names if k == "user_id" and 0 < v <= MAX_ROW_ID],
        emails=[v for k, v in names if k == "email"],
        external_ids=[v for k, v in names if k == "external_id"],
        organization_id=key.organization_id,
    )
    unknown = {
        (f"recipients[{i}]" if "recipients" in body else k): FieldError("user.not_found")
        for i, (k, v) in enumerate(names)
        if (k, v) not in found
    }
    if unknown:
        raise HubError(
            422, "notification.unknown_recipients", fields=dict(list(unknown.items())[:50])
        )
    recipients: dict[int, str] = {}  # user id → the language of their message
    for name in names:
        match = found[name]
        recipients.setdefault(match.user_id, match.locale or key.product.default_locale)
    answer, replayed = await service.send(
        product_id=key.product.id,
        env=key.env,
        recipients=recipients,
        content=content,
        idempotency_key=idempotency_key,
        fingerprint=request_fingerprint(body),
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(answer, status_code=201, headers=headers)


def _locale(request: Request, ctx: AccessContext) -> str:
    return negotiate_locale(
        request.query_params, request.headers, ctx.user.locale or ctx.product.default_locale
    )


def _int_param(request: Request, name: str, default: int | None, maximum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return parse_id(
        raw,
        maximum=maximum,
        error=lambda: validation_failed({name: FieldError("field.not_integer")}),
    )


def _scope(ctx: AccessContext) -> UserScope:
    return UserScope(ctx.product.id, ctx.env, ctx.user.id)


async def list_notifications(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    return await _page(request, _scope(ctx), _locale(request, ctx))


async def _page(request: Request, scope: UserScope, locale: str) -> Response:
    """A page of a user's notifications (`?limit`, `?cursor`, `?unread`), newest first."""
    service = _service(request)
    limit = _int_param(request, "limit", PAGE_DEFAULT, PAGE_MAX)
    before = _int_param(request, "cursor", None, MAX_BIGINT_ID)
    unread_only = request.query_params.get("unread", "").lower() in ("1", "true", "yes")
    items, next_cursor = await service.page(
        scope, before=before, limit=limit, unread_only=unread_only
    )
    return JSONResponse(
        {
            "notifications": [n.public(locale) for n in items],
            "next_cursor": str(next_cursor) if next_cursor is not None else None,
            "unread_count": await service.unread_count(scope),
        }
    )


async def unread_count(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    count = await _service(request).unread_count(_scope(ctx))
    return JSONResponse({"unread_count": count})


async def mark_read(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    notification_id = parse_id(
        request.path_params["notification_id"],
        error=lambda: HubError(404, "notification.not_found"),
    )
    count = await _service(request).mark_read(_scope(ctx), notification_id)
    return JSONResponse({"id": notification_id, "read": True, "unread_count": count})


async def mark_all_read(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    count = await _service(request).mark_all_read(_scope(ctx))
    return JSONResponse({"unread_count": count})


async def user_notifications(request: Request) -> Response:
    """Server side: one user's notifications, newest first, in pages."""
    caller = await server_or_org_key("notifications:read")(request)
    user_id = parse_id(
        request.path_params["user_id"],
        maximum=MAX_ROW_ID,
        error=lambda: HubError(404, "user.not_found"),
    )
    service = _service(request)
    found = await resolve_recipients(
        service.db,
        caller.product.id,
        caller.env,
        user_ids=[user_id],
        organization_id=caller.organization_id,
    )
    if not found:
        raise HubError(404, "user.not_found")
    locale = negotiate_locale(
        request.query_params,
        request.headers,
        found[("user_id", user_id)].locale or caller.product.default_locale,
    )
    return await _page(request, UserScope(caller.product.id, caller.env, user_id), locale)


async def send_test_notification(request: Request) -> Response:
    """Development only (not mounted in production): a notification to the caller, so the
    demo page can show a delivery without a product backend."""
    ctx = await USER_TOKEN(request)
    now = time.strftime("%H:%M:%S")
    answer, _ = await _service(request).send(
        product_id=ctx.product.id,
        env=ctx.env,
        recipients={ctx.user.id: ctx.user.locale or ctx.product.default_locale},
        content={
            "title": "Test notification",
            "message": f"Sent from the demo page at {now} UTC.",
            "url": None,
            "type": "demo",
            "data": {"sent_at": now},
        },
    )
    return JSONResponse(answer, status_code=201)


# Mounted by the app in development only.
development_routes = [
    Route("/api/v1/dev/test_notification", send_test_notification, methods=["POST"]),
]

routes = [
    Route("/api/v1/notifications", send_notifications, methods=["POST"]),
    Route("/api/v1/users/{user_id}/notifications", user_notifications, methods=["GET"]),
    Route("/api/v1/notifications", list_notifications, methods=["GET"]),
    Route("/api/v1/notifications/unread_count", unread_count, methods=["GET"]),
    Route("/api/v1/notifications/read_all", mark_all_read, methods=["POST"]),
    Route("/api/v1/notifications/{notification_id}/read", mark_read, methods=["POST"]),
]
