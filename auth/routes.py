"""HTTP endpoints of the headless auth API (`/api/v1/auth/*`, `/.well-known/jwks.json`).

Each handler resolves the product and checks the browser origin first, then reads and
validates the body, then calls one `Auth` flow. Nothing is written before all checks pass.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import one_time
from auth.credentials import PUBLISHABLE_KEY_HEADER, bearer, client_address, credentials
from auth.origins import check_origin
from auth.products import Product
from auth.service import PASSWORD_MAX, PASSWORD_MIN, AccessContext, Auth
from infra.errors import request_locale, unauthorized
from infra.http import Fields, read_json
from infra.i18n import translate

PRODUCT_HEADER = "x-product-slug"


def _auth(request: Request) -> Auth:
    return request.app.state.auth


async def _body(request: Request) -> Fields:
    return Fields(await read_json(request, _auth(request).settings.max_body_bytes))


async def public_product(request: Request) -> tuple[Product, str]:
    """The product environment a browser request is for, from its publishable key (which
    names the environment; nothing else in the request can override it) or from
    `X-Product-Slug` (live). Counted against the product's public rate limit."""
    auth = _auth(request)
    presented = request.headers.get(PUBLISHABLE_KEY_HEADER)
    if presented is not None:
        product, env = await credentials(request).publishable(request, presented.strip())
    else:
        product, env = await auth.product_for_slug(request.headers.get(PRODUCT_HEADER)), "live"
    check_origin(request, product)
    await auth.limiter.hit(auth.settings.rate_limits.public_product, "public", str(product.id), env)
    return product, env


async def access_context(request: Request) -> AccessContext:
    """The user behind the request's access token (401 unless every check passes)."""
    auth = _auth(request)
    token = bearer(request)
    if token is None:
        raise unauthorized()
    await credentials(request).refuse_key_as_user_token(request, token)
    claims, product = await auth.authenticate_access(token)
    check_origin(request, product)
    return await auth.access_context(claims, product)


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
    product, env = await public_product(request)
    fields = await _body(request)
    email = fields.email()
    password = _new_password(fields)
    name = fields.string("name", required=False) or ""
    organization_name = fields.string("organization_name")
    locale = fields.locale()
    fields.check()
    result = await _auth(request).register(
        product,
        env,
        email=email,
        password=password,
        name=name.strip(),
        organization_name=organization_name.strip(),
        locale=locale or request_locale(request),
        client_ip=client_address(request),
    )
    verify = None
    if not result["user"]["email_verified"]:
        verify = BackgroundTask(
            _auth(request).send_verification, product, env, result["user"]["id"]
        )
    return JSONResponse(result, status_code=201, background=verify)


async def login(request: Request) -> Response:
    product, env = await public_product(request)
    fields = await _body(request)
    email = fields.email()
    password = fields.string("password", max_length=PASSWORD_MAX)
    fields.check()
    result = await _auth(request).login(
        product, env, email=email, password=password, client_ip=client_address(request)
    )
    return JSONResponse(result)


async def select_org(request: Request) -> Response:
    product, env = await public_product(request)
    fields = await _body(request)
    login_token = fields.string("login_token", max_length=200)
    organization_id = fields.integer("organization_id")
    fields.check()
    result = await _auth(request).select_organization(
        product, env, login_token=login_token, organization_id=organization_id
    )
    return JSONResponse(result)


async def refresh(request: Request) -> Response:
    auth = _auth(request)
    fields = await _body(request)
    refresh_token = fields.string("refresh_token", max_length=8192)
    fields.check()
    claims = auth.refresh_claims(refresh_token)
    product = await auth.product_of(claims)
    check_origin(request, product)
    result = await auth.refresh_session(claims, product, client_ip=client_address(request))
    return JSONResponse(result)


async def logout(request: Request) -> Response:
    """Revoke the session named by the access token, or by a `refresh_token` in the body."""
    auth = _auth(request)
    token = bearer(request)
    if token is not None:
        claims, product = await auth.authenticate_access(token)
    else:
        fields = await _body(request)
        refresh_token = fields.string("refresh_token", max_length=8192)
        fields.check()
        claims = auth.refresh_claims(refresh_token)
        product = await auth.product_of(claims)
    check_origin(request, product)
    await auth.logout(claims)
    return Response(status_code=204)


async def forgot_password(request: Request) -> Response:
    auth = _auth(request)
    product, env = await public_product(request)
    fields = await _body(request)
    email = fields.email()
    fields.check()
    await auth.request_password_reset(product, env, email=email, client_ip=client_address(request))
    # The same answer whether or not the email exists; the lookup runs after it is sent.
    return JSONResponse(
        {"message": translate("password_reset.requested", request_locale(request))},
        status_code=202,
        background=BackgroundTask(auth.send_password_reset, product, env, email),
    )


async def reset_password(request: Request) -> Response:
    auth = _auth(request)
    fields = await _body(request)
    token = fields.string("token", max_length=200)
    password = _new_password(fields)
    fields.check()
    grant = await auth.link_grant(one_time.PASSWORD_RESET, token, client_ip=client_address(request))
    check_origin(request, await auth.product_by_id(grant.product_id))
    await auth.reset_password(token, password)
    return JSONResponse({"message": translate("password_reset.done", request_locale(request))})


async def verify_email(request: Request) -> Response:
    """Prove the email with the token of a verification link (single use)."""
    auth = _auth(request)
    fields = await _body(request)
    token = fields.string("token", max_length=200)
    fields.check()
    grant = await auth.link_grant(one_time.VERIFY_EMAIL, token, client_ip=client_address(request))
    check_origin(request, await auth.product_by_id(grant.product_id))
    await auth.verify_email(token)
    return JSONResponse({"message": translate("email_verification.done", request_locale(request))})


async def resend_verification(request: Request) -> Response:
    auth = _auth(request)
    ctx = await access_context(request)
    await auth.request_verification(ctx)
    return JSONResponse(
        {"message": translate("email_verification.sent", request_locale(request))},
        status_code=202,
        background=BackgroundTask(auth.send_verification, ctx.product, ctx.env, ctx.user.id),
    )


async def me(request: Request) -> Response:
    auth = _auth(request)
    ctx = await access_context(request)
    if request.method == "GET":
        return JSONResponse(await auth.me(ctx))
    fields = await _body(request)
    name = fields.string("name", required=False)
    locale = fields.locale()
    if name is not None and not name.strip():
        fields.error("name", "field.required")
    fields.check()
    return JSONResponse(
        await auth.update_me(ctx, name=name.strip() if name else None, locale=locale)
    )


async def jwks(request: Request) -> Response:
    return JSONResponse(
        _auth(request).signer.jwks(), headers={"Cache-Control": "public, max-age=300"}
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
