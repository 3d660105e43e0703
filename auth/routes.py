"""HTTP endpoints of the headless auth API (`/api/v1/auth/*`, `/.well-known/jwks.json`).

Each route is declared once (`infra.api`): its guard (`auth/transport.py`: the product and
the browser origin, or the user's token) runs first, then its body type is read and
validated, then the handler calls one flow (`AccountFlows`, `SessionTokens` or
`MailedLinks`). Nothing is written before all checks pass.
"""

from __future__ import annotations

from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth import one_time
from auth.answers import MESSAGE, PENDING_VERIFICATION, STRING, TOKEN_ANSWER, USER, obj
from auth.bodies import (
    ForgotPassword,
    Login,
    RefreshToken,
    Register,
    ResetPassword,
    SelectOrganization,
    UpdateMe,
    VerifyEmail,
)
from auth.credentials import client_address
from auth.origins import check_origin
from auth.products import Product
from auth.services import AuthServices, auth_services
from auth.session_tokens import AccessContext
from auth.transport import PUBLIC, SITE, USER_TOKEN, SiteCaller, bearer_token
from infra.api import Answer, Endpoints, read_body
from infra.errors import request_locale
from infra.i18n import translate

api = Endpoints(tags=["auth"])

# What a browser's product lookup can answer, on every route guarded by SITE.
SITE_ERRORS: dict[int, Any] = {
    400: "product.required",
    404: "product.not_found",
    429: "rate_limited",
}
# Routes whose credential is a token in the body: its checks answer these.
TOKEN_IN_BODY_ERRORS: dict[int, Any] = {
    401: ("auth.unauthorized", "auth.invalid_credentials"),
    403: ("origin.forbidden", "subscription.inactive"),
    404: ("product.not_found", "user.not_found"),
    429: "rate_limited",
}
ME = obj(["user"], user=USER, organization={}, subscription={})


def _message(request: Request, code: str, status: int = 200, **extra: Any) -> JSONResponse:
    """A localized confirmation (`{"message": …}`)."""
    return JSONResponse(
        {"message": translate(code, request_locale(request))}, status_code=status, **extra
    )


@api.route(
    "POST",
    "/api/v1/auth/register",
    summary="Register a user and their organization; a token pair (409 when the email has an "
    "unconfirmed identity on another product of the pool: a link to set a password is mailed "
    "to it); no tokens but `email_verification_required` when the product requires a proven "
    "email",
    guard=SITE,
    body=Register,
    answers={
        201: Answer("Registered", {"oneOf": [TOKEN_ANSWER, PENDING_VERIFICATION]}),
        **SITE_ERRORS,
        409: "auth.email_unconfirmed",
    },
)
async def register(request: Request, site: SiteCaller, body: Register) -> Response:
    services = auth_services(request)
    result = await services.accounts.register(
        site.product,
        site.env,
        email=body.email,
        password=body.password,
        name=body.name.strip(),
        organization_name=body.organization_name.strip(),
        locale=body.locale or request_locale(request),
        client_ip=client_address(request),
    )
    verify = None
    if not result["user"]["email_verified"]:
        user_id = result["user"]["id"]
        verify = BackgroundTask(services.links.send_verification, site.product, site.env, user_id)
    return JSONResponse(result, status_code=201, background=verify)


@api.route(
    "POST",
    "/api/v1/auth/login",
    summary="Log in; a token pair, or an organization choice",
    guard=SITE,
    body=Login,
    answers={
        200: TOKEN_ANSWER,
        401: ("auth.unauthorized", "auth.invalid_credentials"),
        403: ("origin.forbidden", "auth.email_unverified", "subscription.inactive"),
        **SITE_ERRORS,
    },
)
async def login(request: Request, site: SiteCaller, body: Login) -> Response:
    result = await auth_services(request).accounts.login(
        site.product,
        site.env,
        email=body.email,
        password=body.password,
        client_ip=client_address(request),
    )
    return JSONResponse(result)


@api.route(
    "POST",
    "/api/v1/auth/login/select_org",
    summary="Finish a login by choosing the organization",
    guard=SITE,
    body=SelectOrganization,
    answers={
        200: TOKEN_ANSWER,
        401: ("auth.unauthorized", "auth.invalid_login_token"),
        **SITE_ERRORS,
        404: ("product.not_found", "organization.not_found"),
    },
)
async def select_org(request: Request, site: SiteCaller, body: SelectOrganization) -> Response:
    result = await auth_services(request).accounts.select_organization(
        site.product, site.env, login_token=body.login_token, organization_id=body.organization_id
    )
    return JSONResponse(result)


@api.route(
    "POST",
    "/api/v1/auth/refresh",
    summary="Rotate the refresh token; a new pair",
    guard=PUBLIC,  # the credential is the refresh token in the body
    body=RefreshToken,
    answers={200: TOKEN_ANSWER, **TOKEN_IN_BODY_ERRORS},
)
async def refresh(request: Request, caller: None, body: RefreshToken) -> Response:
    services = auth_services(request)
    claims, product = await services.tokens.refresh_claims(body.refresh_token)
    check_origin(request, product)
    result = await services.tokens.refresh(claims, product, client_ip=client_address(request))
    return JSONResponse(result)


@api.route(
    "POST",
    "/api/v1/auth/logout",
    summary="Revoke the session (access token, or refresh_token in the body)",
    guard=PUBLIC,  # either credential ends the session it names, even a dead one
    body=RefreshToken,
    body_required=False,
    answers={204: Answer("Logged out"), **TOKEN_IN_BODY_ERRORS},
)
async def logout(request: Request, caller: None) -> Response:
    """Revoke the session named by the access token, or by a `refresh_token` in the body."""
    services = auth_services(request)
    token = bearer_token(request)
    claims: dict[str, Any]
    product: Product
    if token is not None:
        claims, product = await services.tokens.access_claims(token)
    else:
        body = await read_body(request, RefreshToken)
        claims, product = await services.tokens.refresh_claims(body.refresh_token)
    check_origin(request, product)
    await services.tokens.logout(claims)
    return Response(status_code=204)


@api.route(
    "POST",
    "/api/v1/auth/forgot_password",
    summary="Mail a reset link if the email is registered (always the same answer)",
    guard=SITE,
    body=ForgotPassword,
    answers={202: Answer("Accepted", MESSAGE), **SITE_ERRORS},
)
async def forgot_password(request: Request, site: SiteCaller, body: ForgotPassword) -> Response:
    links = auth_services(request).links
    await links.request_password_reset(
        site.product, site.env, email=body.email, client_ip=client_address(request)
    )
    # The same answer whether or not the email exists; the lookup runs after it is sent.
    send = BackgroundTask(links.send_password_reset, site.product, site.env, body.email)
    return _message(request, "password_reset.requested", 202, background=send)


async def _followed_link(
    request: Request, services: AuthServices, purpose: str, token: str
) -> None:
    """A mailed link's token, checked and counted before anything is changed; the browser's
    origin is checked against the product that mailed it."""
    grant = await services.links.link_grant(purpose, token, client_ip=client_address(request))
    check_origin(request, await services.products.by_id(grant.product_id))


LINK_ERRORS: dict[int, Any] = {403: "origin.forbidden", 429: "rate_limited"}


@api.route(
    "PUT",
    "/api/v1/auth/reset_password",
    summary="Set a new password with a reset token",
    guard=PUBLIC,  # the credential is the mailed link's token in the body
    body=ResetPassword,
    answers={200: MESSAGE, 400: "auth.invalid_reset_token", **LINK_ERRORS},
)
async def reset_password(request: Request, caller: None, body: ResetPassword) -> Response:
    services = auth_services(request)
    await _followed_link(request, services, one_time.PASSWORD_RESET, body.token)
    await services.links.reset_password(body.token, body.password)
    return _message(request, "password_reset.done")


@api.route(
    "POST",
    "/api/v1/auth/verify_email",
    summary="Prove the email with the token of a verification link (single use)",
    guard=PUBLIC,  # the credential is the mailed link's token in the body
    body=VerifyEmail,
    answers={200: MESSAGE, 400: "auth.invalid_verification_token", **LINK_ERRORS},
)
async def verify_email(request: Request, caller: None, body: VerifyEmail) -> Response:
    """Prove the email with the token of a verification link (single use)."""
    services = auth_services(request)
    await _followed_link(request, services, one_time.VERIFY_EMAIL, body.token)
    await services.links.verify_email(body.token)
    return _message(request, "email_verification.done")


@api.route(
    "POST",
    "/api/v1/auth/resend_verification",
    summary="Mail the signed-in user another verification link (409 when already proven)",
    guard=USER_TOKEN,
    answers={
        202: Answer("Accepted", MESSAGE),
        409: "auth.email_already_verified",
        429: "rate_limited",
    },
)
async def resend_verification(request: Request, ctx: AccessContext) -> Response:
    links = auth_services(request).links
    await links.request_verification(ctx.user)
    send = BackgroundTask(links.send_verification, ctx.product, ctx.env, ctx.user.id)
    return _message(request, "email_verification.sent", 202, background=send)


@api.route(
    "GET",
    "/api/v1/auth/me",
    summary="The signed-in user, organization and subscription",
    guard=USER_TOKEN,
    answers={200: ME, 404: "user.not_found"},
)
async def me(request: Request, ctx: AccessContext) -> Response:
    return JSONResponse(await auth_services(request).accounts.me(ctx))


@api.route(
    "PUT",
    "/api/v1/auth/me",
    summary="Update name or locale",
    guard=USER_TOKEN,
    body=UpdateMe,
    answers={200: ME, 404: "user.not_found"},
)
async def update_me(request: Request, ctx: AccessContext, body: UpdateMe) -> Response:
    name = body.name.strip() if body.name else None
    return JSONResponse(
        await auth_services(request).accounts.update_me(ctx, name=name, locale=body.locale)
    )


@api.route(
    "GET",
    "/.well-known/jwks.json",
    summary="Public keys that verify the hub's tokens",
    guard=PUBLIC,
    answers={200: obj(["keys"], keys={"type": "array", "items": obj(kid=STRING)})},
)
async def jwks(request: Request, caller: None) -> Response:
    return JSONResponse(
        auth_services(request).signer.jwks(), headers={"Cache-Control": "public, max-age=300"}
    )


routes = api.routes
