"""A product environment's notification log in the console (everyone with a role), and
"send a test notification" (owners, admins, developers).

The log reads through the notifications service, newest first, a page at a time (the cursor
is the last id shown), optionally one recipient's only. A test notification goes the way
`POST /api/v1/notifications` goes: the recipient is resolved within this product environment
(anyone else is "unknown", and nothing is stored), then the service stores it and publishes
it, so it reaches the user's open sockets like any other.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from auth.recipients import Recipient
from auth.tables import ENVIRONMENTS
from console.guard import ProductAccess, audit, require, require_form
from console.pages_products import product_context
from console.services import console_services
from console.web import Refused, page, render
from infra.checks import Invalid, check_email, check_text
from infra.ids import MAX_ROW_ID
from notifications.bodies import CURSOR_MAX, MAX_MESSAGE, MAX_TITLE
from notifications.service import NotificationService

PAGE_SIZE = 50
RECIPIENT_MAX = 320


def _notifications(request: Request) -> NotificationService:
    return request.app.state.services.notifications


def _env(value: str | None) -> str:
    if value is None or value == "":
        return "live"
    if value not in ENVIRONMENTS:
        raise Refused(400, "The environment is live or test.")
    return value


def _cursor(value: str | None) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 19 and int(value) <= CURSOR_MAX:
        return int(value)
    raise Refused(400, "The page cursor is not one this page gave.")


async def _recipient(
    service: NotificationService, access: ProductAccess, env: str, recipient: str
) -> Recipient | None:
    """The user of this product environment that `recipient` (a user id or an email) names,
    or None (nobody, or someone of another product or environment)."""
    if recipient.isascii() and recipient.isdigit() and len(recipient) <= 10:
        user_id = int(recipient)
        if not 0 < user_id <= MAX_ROW_ID:
            return None
        found = await service.recipients(access.product.id, env, user_ids=[user_id])
        return found.get(("user_id", user_id))
    try:
        email = check_email(recipient)
    except Invalid:
        return None
    assert email is not None
    found = await service.recipients(access.product.id, env, emails=[email])
    return found.get(("email", email))


async def _log_page(
    request: Request,
    access: ProductAccess,
    *,
    env: str,
    recipient: str = "",
    before: int | None = None,
    form: dict[str, str] | None = None,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    service = _notifications(request)
    named = await _recipient(service, access, env, recipient) if recipient else None
    user_id = named.user_id if named is not None else None
    items, next_cursor = [], None
    if not recipient or named is not None:
        items, next_cursor = await service.product_log(
            access.product.id, env, before=before, limit=PAGE_SIZE, user_id=user_id
        )
    emails = await service.user_emails([n.user_id for n in items])
    context = product_context(
        access,
        env=env,
        environments=ENVIRONMENTS,
        recipient=recipient,
        notifications=items,
        emails=emails,
        next_cursor=next_cursor,
        may_test=access.may("notifications.test"),
        form=form or {"recipient": "", "title": "", "message": ""},
        error=error,
        notice=notice,
    )
    return render(request, "notifications.html", context, status)


@page
async def notifications_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.view")
    query = request.query_params
    recipient = query.get("recipient", "").strip()
    if len(recipient) > RECIPIENT_MAX or "\x00" in recipient:
        raise Refused(400, "The recipient filter is an email or a user id.")
    return await _log_page(
        request,
        access,
        env=_env(query.get("env")),
        recipient=recipient,
        before=_cursor(query.get("before")),
    )


@page
async def send_test(request: Request) -> Response:
    access, form = await require_form(request, "notifications.test")
    env = _env(form.get("env"))
    values = {name: form.get(name, "") for name in ("recipient", "title", "message")}
    try:
        title = check_text(values["title"], required=True, max_length=MAX_TITLE, blank=False)
        message = check_text(values["message"], required=False, max_length=MAX_MESSAGE)
    except Invalid:
        error = f"Give a title (1 to {MAX_TITLE} characters) and a body of at most {MAX_MESSAGE}."
        return await _log_page(request, access, env=env, form=values, error=error, status=422)
    service = _notifications(request)
    recipient = values["recipient"].strip()
    named = None
    if 0 < len(recipient) <= RECIPIENT_MAX:
        named = await _recipient(service, access, env, recipient)
    if named is None:
        error = f"No user of this product's {env} environment has that email or user id."
        return await _log_page(request, access, env=env, form=values, error=error, status=422)
    # Counted once the send is valid: refused forms count for nothing, so the lowest role
    # allowed to send cannot spend the product environment's budget without a trace.
    services = console_services(request)
    rule = services.settings.rate_limits.test_notification
    await services.limiter.hit(rule, "console-test", str(access.product.id), env)
    answer, _ = await service.send(
        product_id=access.product.id,
        env=env,
        recipients={named.user_id: named.locale or access.product.default_locale},
        content={
            "title": title,
            "message": message or "",
            "url": None,
            "type": "test",
            "data": None,
        },
    )
    [sent] = answer["notifications"]
    user_id = named.user_id
    await audit(
        request,
        access,
        "notification.test",
        target=str(user_id),
        detail={"env": env, "notification_id": sent["id"], "user_id": user_id},
    )
    notice = f"Test notification {sent['id']} sent to user {user_id}."
    return await _log_page(request, access, env=env, notice=notice, status=201)
