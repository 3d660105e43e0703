"""HTTP endpoints of the headless auth API (`/api/v1/auth/*`, `/.well-known/jwks.json`).

Each handler runs its guard first (`auth/transport.py`: the product and the browser origin,
or the user's token), then reads and validates the body, then calls one flow
(`AccountFlows`, `SessionTokens` or `MailedLinks`). Nothing is written before all checks pass.
"""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import one_time
from auth.credentials import client_address
from auth.origins import check_origin
from auth.passwords import PASSWORD_MAX, PASSWORD_MIN
from auth.products import Product
from auth.services import AuthServices, auth_services
from auth.transport import PUBLIC, SITE, USER_TOKEN, bearer_token
from infra.errors import request_locale
from infra.http import Fields, read_json
from infra.i18n import translate


async def _body(request: Request, services: AuthServices) -> Fields:
    return Fields(await read_json(request, services.settings.max_body_bytes))


def _new_password(fields: Fields) -> str | None:
    password = fields.string("password", max_length=10_000)
    confirmation = fields.string("password_confirmation", max_length=10_000)
    if password is None:
        return None
    if len(password) < PASSWORD_MIN:
        fields.error("password", "password.too_short", min=PASSWORD_MIN)
    elif len(password) > PASSWORD_MAX:
        fields.error("password", "password.too_long", max=PASSWORD_MAX)
    elif confirmation is not None and confirmation != password:
        fields.error("password_confirmation", "password.confirmation_mismatch")
    return password


async def register(request: Request) -> Response:
    site = await SITE(request)
    services = auth_services(request)
    fields = await _body(request, services)
    email = fields.email()
    password = _new_password(fields)
    name = fields.string("name", required=False) or ""
    organization_name = fields.string("organization_name")
    locale = fields.locale()
    fields.check()
    result = await services.accounts.register(
        site.product,
        site.env,
        email=email,
        password=password,
        name=name.strip(),
        organization_name=organization_name.strip(),
        locale=locale or request_locale(request),
        client_ip=client_address(request),
    )
    verify = None
    if not result["user"]["email_verified"]:
        user_id = result["user"]["id"]
        verify = BackgroundTask(services.links.send_verification, site.product, site.env, user_id)
    return JSONResponse(result, status_code=201, background=verify)


async def login(request: Request) -> Response:
    site = await SITE(request)
    services = auth_services(request)
    fields = await _body(request, services)
    email = fields.email()
    password = fields.string("password", max_length=PASSWORD_MAX)
    fields.check()
    result = await services.accounts.login(
        site.product, site.env, email=email, password=password, client_ip=client_address(request)
    )
    return JSONResponse(result)


async def select_org(request: Request) -> Response:
    site = await SITE(request)
    services = auth_services(request)
    fields = await _body(request, services)
    login_token = fields.string("login_token", max_length=200)
    organization_id = fields.integer("organization_id")
    fields.check()
    result = await services.accounts.select_organization(
        site.product, site.env, login_token=login_token, organization_id=organization_id
    )
    return JSONResponse(result)


async def _refresh_token_claims(
    request: Request, services: AuthServices
) -> tuple[dict[str, Any], Product]:
    """The verified claims of the `refresh_token` in the body, and their product."""
    fields = await _body(request, services)
    refresh_token = fields.string("refresh_token", max_length=8192)
    fields.check()
    return await services.tokens.refresh_claims(refresh_token)


async def refresh(request: Request) -> Response:
    await PUBLIC(request)  # the credential is the refresh token in the body
    services = auth_services(request)
    claims, product = await _refresh_token_claims(request, services)
    check_origin(request, product)
    result = await services.tokens.refresh(claims, product, client_ip=client_address(request))
    return JSONResponse(result)


async def logout(request: Request) -> Response:
    """Revoke the session named by the access token, or by a `refresh_token` in the body."""
    await PUBLIC(request)  # either credential ends the session it names, even a dead one
    services = auth_services(request)
    token = bearer_token(request)
    if token is not None:
        claims, product = await services.tokens.access_claims(token)
    else:
        claims, product = await _refresh_token_claims(request, services)
    check_origin(request, product)
    await services.tokens.logout(claims)
    return Response(status_code=204)


async def forgot_password(request: Request) -> Response:
    site = await SITE(request)
    services = auth_services(request)
    fields = await _body(request, services)
    email = fields.email()
    fields.check()
    await services.links.request_password_reset(
        site.product, site.env, email=email, client_ip=client_address(request)
    )
    # The same answer whether or not the email exists; the lookup runs after it is sent.
    return JSONResponse(
        {"message": translate("password_reset.requested", request_locale(request))},
        status_code=202,
        background=BackgroundTask(
            services.links.send_password_reset, site.product, site.env, email
        ),
    )


async def _followed_link(
    request: Request, services: AuthServices, purpose: str
) -> tuple[str, str | None]:
    """The token of a mailed link in the body (and the new password a reset sets), checked
    and counted before anything is changed; the browser's origin is checked against the
    product that mailed it."""
    fields = await _body(request, services)
    token = fields.string("token", max_length=200)
    password = _new_password(fields) if purpose == one_time.PASSWORD_RESET else None
    fields.check()
    grant = await services.links.link_grant(purpose, token, client_ip=client_address(request))
    check_origin(request, await services.products.by_id(grant.product_id))
    return token, password


async def reset_password(request: Request) -> Response:
    await PUBLIC(request)  # the credential is the mailed link's token in the body
    services = auth_services(request)
    token, password = await _followed_link(request, services, one_time.PASSWORD_RESET)
    assert password is not None  # fields.check() refuses a reset without one
    await services.links.reset_password(token, password)
    return JSONResponse({"message": translate("password_reset.done", request_locale(request))})


async def verify_email(request: Request) -> Response:
    """Prove the email with the token of a verification link (single use)."""
    await PUBLIC(request)  # the credential is the mailed link's token in the body
    services = auth_services(request)
    token, _ = await _followed_link(request, services, one_time.VERIFY_EMAIL)
    await services.links.verify_email(token)
    return JSONResponse({"message": translate("email_verification.done", request_locale(request))})


async def resend_verification(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    links = auth_services(request).links
    await links.request_verification(ctx.user)
    return JSONResponse(
        {"message": translate("email_verification.sent", request_locale(request))},
        status_code=202,
        background=BackgroundTask(links.send_verification, ctx.product, ctx.env, ctx.user.id),
    )


async def me(request: Request) -> Response:
    ctx = await USER_TOKEN(request)
    services = auth_services(request)
    if request.method == "GET":
        return JSONResponse(await services.accounts.me(ctx))
    fields = await _body(request, services)
    name = fields.string("name", required=False)
    locale = fields.locale()
    if name is not None and not name.strip():
        fields.error("name", "field.required")
    fields.check()
    return JSONResponse(
        await services.accounts.update_me(ctx, name=name.strip() if name else None, locale=locale)
    )


async def jwks(request: Request) -> Response:
    await PUBLIC(request)
    return JSONResponse(
        auth_services(request).signer.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


routes = [
    Route("/api/v1/auth/register", register, methods=["POST"]),
    Route("/api/v1/auth/login", login, methods=["POST"]),
    Route("/api/v1/auth/login/select_org", select_org, methods=["POST"]),
    Route("/api/v1/auth/refresh", refresh, methods=["POST"]),
    Route("/api/v1/auth/logout", logout, methods=["POST"]),
    Route("/api/v1/auth/forgot_password", forgot_password, methods=["POST"]),
    Route("/api/v1/auth/reset_password", reset_password, methods=["PUT"]),
    Route("/api/v1/auth/verify_email", verify_email, methods=["POST"]),
    Route("/api/v1/auth/resend_verification", resend_verification, methods=["POST"]),
    Route("/api/v1/auth/me", me, methods=["GET", "PUT"]),
    Route("/.well-known/jwks.json", jwks, methods=["GET"]),
]
