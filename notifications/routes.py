"""HTTP API of notifications, each route declared once (`infra.api`).

Server side: `POST /api/v1/notifications` to one recipient or up to 1000 (`notifications:write`)
and `GET /api/v1/users/{id}/notifications` (`notifications:read`), with a secret or restricted
key — or a workspace token / OAuth token / extension key, which reach members of their
organization only.
User side (access token): list, unread count, mark one read, mark all read.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.answers import obj
from auth.credentials import ServerCaller
from auth.session_tokens import AccessContext
from auth.transport import USER_TOKEN, server_or_org_key
from infra.api import Answer, Endpoints
from infra.errors import FieldError, HubError
from infra.i18n import negotiate_locale
from infra.ids import MAX_ROW_ID, parse_id
from notifications.answers import MARKED_READ, NOTIFICATION_PAGE, SENT, UNREAD_COUNT
from notifications.bodies import Page, SendNotification
from notifications.publish import request_fingerprint
from notifications.scope import UserScope
from notifications.service import NotificationService

api = Endpoints(tags=["notifications"])
server_api = Endpoints(tags=["server"])
development_api = Endpoints(tags=["notifications"])

# How many unknown recipients a 422 names (enough to fix the client, small enough to read).
UNKNOWN_SHOWN = 50


def _service(request: Request) -> NotificationService:
    return request.app.state.services.notifications


@api.route(
    "POST",
    "/api/v1/notifications",
    summary="Send a notification to one recipient or up to 1000 (Idempotency-Key honoured)",
    guard=server_or_org_key("notifications:write"),
    body=SendNotification,
    body_limit=lambda settings: settings.max_body_bytes * 4,
    answers={
        201: SENT,
        409: "idempotency.conflict",
        422: ("validation.failed", "notification.unknown_recipients"),
        429: "rate_limited",
        503: "notification.not_stored",
    },
)
async def send_notifications(
    request: Request, key: ServerCaller, body: SendNotification
) -> Response:
    names = body.names
    service = _service(request)
    found = await service.recipients(
        key.product.id,
        key.env,
        # An id beyond the column's range names nobody (PostgreSQL would refuse the query).
        user_ids=[v for k, v in names if k == "user_id" and 0 < v <= MAX_ROW_ID],
        emails=[v for k, v in names if k == "email"],
        external_ids=[v for k, v in names if k == "external_id"],
        organization_id=key.organization_id,
    )
    listed = "recipients" in body.raw
    unknown = {
        (f"recipients[{i}]" if listed else k): FieldError("user.not_found")
        for i, (k, v) in enumerate(names)
        if (k, v) not in found
    }
    if unknown:
        shown = dict(list(unknown.items())[:UNKNOWN_SHOWN])
        raise HubError(422, "notification.unknown_recipients", fields=shown)
    recipients: dict[int, str] = {}  # user id → the language of their message
    for name in names:
        match = found[name]
        recipients.setdefault(match.user_id, match.locale or key.product.default_locale)
    answer, replayed = await service.send(
        product_id=key.product.id,
        env=key.env,
        recipients=recipients,
        content=body.content,
        idempotency_key=body.idempotency_key,
        fingerprint=request_fingerprint(dict(body.raw)),
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(answer, status_code=201, headers=headers)


def _scope(ctx: AccessContext) -> UserScope:
    return UserScope(ctx.product.id, ctx.env, ctx.user.id)


async def _page(request: Request, scope: UserScope, query: Page, user_locale: str) -> Response:
    """A page of a user's notifications, newest first, in the negotiated language."""
    locale = negotiate_locale(request.query_params, request.headers, user_locale)
    service = _service(request)
    items, next_cursor = await service.page(
        scope, before=query.cursor, limit=query.limit, unread_only=query.unread
    )
    return JSONResponse(
        {
            "notifications": [n.public(locale) for n in items],
            "next_cursor": str(next_cursor) if next_cursor is not None else None,
            "unread_count": await service.unread_count(scope),
        }
    )


@api.route(
    "GET",
    "/api/v1/notifications",
    summary="The user's notifications, newest first",
    guard=USER_TOKEN,
    query=Page,
    answers={200: NOTIFICATION_PAGE, 404: "user.not_found"},
)
async def list_notifications(request: Request, ctx: AccessContext, query: Page) -> Response:
    user_locale = ctx.user.locale or ctx.product.default_locale
    return await _page(request, _scope(ctx), query, user_locale)


@api.route(
    "GET",
    "/api/v1/notifications/unread_count",
    summary="The user's unread count",
    guard=USER_TOKEN,
    answers={200: UNREAD_COUNT},
)
async def unread_count(request: Request, ctx: AccessContext) -> Response:
    count = await _service(request).unread_count(_scope(ctx))
    return JSONResponse({"unread_count": count})


@api.route(
    "POST",
    "/api/v1/notifications/read_all",
    summary="Mark all read",
    guard=USER_TOKEN,
    answers={200: UNREAD_COUNT},
)
async def mark_all_read(request: Request, ctx: AccessContext) -> Response:
    count = await _service(request).mark_all_read(_scope(ctx))
    return JSONResponse({"unread_count": count})


@api.route(
    "POST",
    "/api/v1/notifications/{notification_id}/read",
    summary="Mark one read",
    guard=USER_TOKEN,
    answers={200: MARKED_READ, 404: "notification.not_found"},
)
async def mark_read(request: Request, ctx: AccessContext) -> Response:
    notification_id = parse_id(
        request.path_params["notification_id"],
        error=lambda: HubError(404, "notification.not_found"),
    )
    count = await _service(request).mark_read(_scope(ctx), notification_id)
    return JSONResponse({"id": notification_id, "read": True, "unread_count": count})


@server_api.route(
    "GET",
    "/api/v1/users/{user_id}/notifications",
    summary="A user's notifications (server side)",
    guard=server_or_org_key("notifications:read"),
    query=Page,
    answers={200: NOTIFICATION_PAGE, 404: "user.not_found", 429: "rate_limited"},
)
async def user_notifications(request: Request, caller: ServerCaller, query: Page) -> Response:
    """Server side: one user's notifications, newest first, in pages."""
    user_id = parse_id(
        request.path_params["user_id"],
        maximum=MAX_ROW_ID,
        error=lambda: HubError(404, "user.not_found"),
    )
    found = await _service(request).recipients(
        caller.product.id, caller.env, user_ids=[user_id], organization_id=caller.organization_id
    )
    if not found:
        raise HubError(404, "user.not_found")
    user_locale = found[("user_id", user_id)].locale or caller.product.default_locale
    scope = UserScope(caller.product.id, caller.env, user_id)
    return await _page(request, scope, query, user_locale)


@development_api.route(
    "POST",
    "/api/v1/dev/test_notification",
    summary="Development only: a test notification to the caller",
    guard=USER_TOKEN,
    answers={201: Answer("Sent", obj()), 404: "user.not_found"},
)
async def send_test_notification(request: Request, ctx: AccessContext) -> Response:
    """Development only (not mounted in production): a notification to the caller, so the
    demo page can show a delivery without a product backend."""
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
development_routes = development_api.routes

routes = [*api.routes, *server_api.routes]
