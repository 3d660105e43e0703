"""The products pages: the list (a member's products; every product for an admin), creating
one (admins; the creator becomes its owner), and a product's settings: origins (owner,
admin, developer) and mail branding, link templates and the alert webhook (owner, admin).

Every change is recorded in the audit log beside the change itself, and goes through the
auth floor's functions, which tell every hub process to forget its cached copy at once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from auth import product_values, products
from auth.webhook_targets import BlockedTarget
from console import accounts
from console.audit import record
from console.guard import ProductAccess, actor, audit, check_csrf, require, require_form, signed_in
from console.services import console_services
from console.sessions import ConsoleSession
from console.web import Refused, page, read_form, redirect, render
from infra.checks import Invalid, check_email
from infra.i18n import SUPPORTED_LOCALES

NAME_MAX = 200
ORIGINS_MAX = 100


def session_context(session: ConsoleSession, **extra: Any) -> dict[str, Any]:
    return {"account": session.account, "csrf_token": session.csrf_token, **extra}


def product_context(access: ProductAccess, **extra: Any) -> dict[str, Any]:
    return session_context(access.session, product=access.product, access=access, **extra)


def _origins(text: str) -> list[str]:
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    if len(lines) > ORIGINS_MAX:
        raise ValueError(f"at most {ORIGINS_MAX} origins")
    return sorted({product_values.normalize_origin(line) for line in lines})


@page
async def product_list(request: Request) -> Response:
    session = await signed_in(request)
    db = console_services(request).db
    every = await products.list_products(db)
    if session.account.is_admin:
        listed = [(p, "owner (admin)") for p in every]
    else:
        roles = await accounts.member_product_ids(db, session.account.id)
        listed = [(p, roles[p.id]) for p in every if p.id in roles]
    return render(request, "products.html", session_context(session, products=listed))


async def _new_product_form(
    request: Request, session: ConsoleSession, values: dict[str, str], error: str | None = None
) -> Response:
    pools = await products.identity_pool_names(console_services(request).db)
    context = session_context(
        session, pools=pools, locales=SUPPORTED_LOCALES, values=values, error=error
    )
    return render(request, "product_new.html", context, 422 if error else 200)


def _admin_only(session: ConsoleSession) -> None:
    if not session.account.is_admin:
        raise Refused(403, "Only console admins create products.")


@page
async def new_product(request: Request) -> Response:
    session = await signed_in(request)
    _admin_only(session)
    values = {"slug": "", "name": "", "identity_pool": "", "origins": "", "default_locale": "en"}
    return await _new_product_form(request, session, values)


@page
async def create_product(request: Request) -> Response:
    session = await signed_in(request)
    _admin_only(session)
    form = await read_form(request)
    check_csrf(request, session, form)
    fields = ("slug", "name", "identity_pool", "origins", "default_locale")
    values = {name: form.get(name, "").strip() for name in fields}
    services = console_services(request)
    try:
        if not values["name"] or len(values["name"]) > NAME_MAX:
            raise ValueError(f"a name of 1 to {NAME_MAX} characters")
        product, _ = await products.create_product(
            services.db,
            slug=values["slug"],
            name=values["name"],
            origins=_origins(values["origins"]),
            default_locale=values["default_locale"] or "en",
            identity_pool=values["identity_pool"] or None,
            https_only=services.settings.production,
        )
    except ValueError as exc:
        return await _new_product_form(request, session, values, str(exc))
    await accounts.add_member(services.db, product.id, session.account.id, "owner")
    await record(
        services.db,
        actor(request, session.account),
        "product.create",
        product_id=product.id,
        target=product.slug,
        detail={"identity_pool": values["identity_pool"] or product.slug},
    )
    # Its keys are made with it; the keys page shows how to get a secret (rotate it).
    return redirect(f"/console/products/{product.slug}")


def _product_page(
    request: Request,
    access: ProductAccess,
    *,
    notice: str | None = None,
    error: str | None = None,
) -> Response:
    context = product_context(access, locales=SUPPORTED_LOCALES, notice=notice, error=error)
    return render(request, "product.html", context, 422 if error else 200)


@page
async def product_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.view")
    return _product_page(request, access)


@page
async def edit_origins(request: Request) -> Response:
    access, form = await require_form(request, "origins.edit")
    services = console_services(request)
    try:
        origins = _origins(form.get("origins", ""))
    except ValueError as exc:
        return _product_page(request, access, error=f"Origins: {exc}")
    before = list(access.product.origins)
    updated = await services.product_admin.update_settings(
        access.product,
        origins=origins,
        require_verified_email=None,
        verify_url_template=None,
        reset_url_template=None,
        https_only=services.settings.production,
    )
    await audit(
        request,
        access,
        "product.origins",
        target=access.product.slug,
        detail={"before": before, "after": list(updated.origins)},
    )
    return redirect(f"/console/products/{access.product.slug}")


def _optional_email(value: str) -> str | None:
    if not value.strip():
        return None
    try:
        return check_email(value)
    except Invalid:
        raise ValueError("the mail sender address is not an email address") from None


class SlackRefused(ValueError):
    """The Slack webhook field's error, said as the form shows it."""


def _alert_destinations(form: dict[str, str], *, strict: bool) -> tuple[bool, str | None]:
    """(email the owners and admins?, the new Slack webhook URL, "" to remove it or None to
    keep it), judged before anything is stored: SlackRefused for a URL the hub would not post
    to. A Slack webhook URL is a secret, so the form never shows it back: an empty field keeps
    the one set, and removing it is its own checkbox."""
    email = form.get("alert_email") == "1"
    if form.get("alert_slack_remove") == "1":
        return email, ""
    slack_url = form.get("alert_slack_url", "").strip()
    if not slack_url:
        return email, None
    try:
        return email, product_values.normalize_webhook_url(slack_url, strict=strict)
    except BlockedTarget:
        raise SlackRefused("The Slack webhook points inside our network.") from None
    except ValueError as exc:
        raise SlackRefused(f"The Slack webhook: {exc}") from None


@page
async def edit_settings(request: Request) -> Response:
    access, form = await require_form(request, "settings.edit")
    services = console_services(request)
    settings = services.settings
    https_only = settings.production
    try:
        sender_name = form.get("mail_from_name", "").strip() or None
        if sender_name is not None and len(sender_name) > NAME_MAX:
            raise ValueError(f"the mail sender name: at most {NAME_MAX} characters")
        sender_address = _optional_email(form.get("mail_from_address", ""))
        templates = {}
        for name in ("reset_url_template", "verify_url_template"):
            template = form.get(name, "").strip()
            if template:
                product_values.normalize_url_template(template, https_only=https_only)
            templates[name] = template  # "" goes back to the default link
        webhook = form.get("alert_webhook_url", "").strip() or None
        if webhook is not None:
            webhook = product_values.normalize_webhook_url(webhook, strict=settings.strict_webhooks)
        alert_email, slack_url = _alert_destinations(form, strict=settings.strict_webhooks)
        admin = services.product_admin
        product = await admin.update_branding(
            access.product,
            default_locale=form.get("default_locale", ""),
            mail_from_name=sender_name,
            mail_from_address=sender_address,
        )
        product = await admin.update_settings(
            product,
            origins=None,
            alert_webhook=webhook,
            require_verified_email=None,
            https_only=https_only,
            **templates,
        )
        # Judged above already, so this stores only (nothing was stored on a refusal).
        product = await admin.set_alert_destinations(
            product, email=alert_email, slack_url=slack_url, strict=settings.strict_webhooks
        )
    except SlackRefused as refused:
        return _product_page(request, access, error=str(refused))
    except BlockedTarget:
        return _product_page(request, access, error="The webhook points inside our network.")
    except ValueError as exc:
        return _product_page(request, access, error=str(exc))
    await audit(
        request,
        access,
        "product.settings",
        target=product.slug,
        detail={
            "default_locale": product.default_locale,
            "mail_from_name": product.mail_from_name,
            "mail_from_address": product.mail_from_address,
            "reset_url_template": product.reset_url_template,
            "verify_url_template": product.verify_url_template,
            "alert_webhook_set": product.alert_webhook_url is not None,
            "alert_email": product.alert_email,
            "alert_slack_set": product.alert_slack_url is not None,
        },
    )
    return redirect(f"/console/products/{product.slug}")
