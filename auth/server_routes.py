"""Server API of a product environment: its users, its keys and its settings.

Authenticated with a secret key (everything) or a restricted key (its scopes), always inside
that key's product environment: a test key never sees or changes live data.

- `POST /api/v1/users` (upsert by `external_id`), `POST /api/v1/users/{id}/tokens`: users:write
- `GET /api/v1/users/{id}`: users:read
- `GET|POST /api/v1/keys`, `POST /api/v1/keys/{id}/rotate`, `DELETE /api/v1/keys/{id}`:
  keys:write. A restricted key never grants or handles more than its own scopes, and never
  rotates the secret key (that would hand it full access).
- `GET|PATCH /api/v1/product` (origins, alert destinations, email verification, link templates):
  the secret key only. A PATCH changes only the fields it names; an unknown field is a 422.
  Product settings are product-wide, so only a live secret key may change them: a test
  key reads them but its PATCH is refused (403), and testing never changes production.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from auth import keys
from auth.answers import PRODUCT_KEY, TOKEN_ANSWER, USER, obj
from auth.bodies import CreateKey, ProductSettings, UpsertUser
from auth.credentials import ServerCaller
from auth.product_admin import ProductAdmin
from auth.products import Product
from auth.services import auth_services
from auth.transport import server_key
from infra.api import Answer, Endpoints, app_settings
from infra.errors import HubError, forbidden
from infra.http import path_id

api = Endpoints(tags=["server"])
keys_api = Endpoints(tags=["keys"])

USER_ANSWER = obj(["user"], user=USER)
PRODUCT = obj(["product"])


def _admin(request: Request) -> ProductAdmin:
    return auth_services(request).product_admin


# -- users -------------------------------------------------------------------------------


@api.route(
    "POST",
    "/api/v1/users",
    summary="Create or update a user by your external_id",
    guard=server_key("users:write"),
    body=UpsertUser,
    answers={
        201: Answer("Created", USER_ANSWER),
        200: Answer("Updated", USER_ANSWER),
        429: "rate_limited",
    },
)
async def upsert_user(request: Request, caller: ServerCaller, body: UpsertUser) -> Response:
    user, created = await auth_services(request).accounts.upsert_user(
        caller.product,
        caller.env,
        external_id=body.external_id,
        email=body.email,
        name=body.name,
        locale=body.locale,
    )
    return JSONResponse({"user": user}, status_code=201 if created else 200)


async def _user_of(request: Request, caller: ServerCaller) -> int:
    user_id = path_id(request, "user_id", "user.not_found")
    # Only users of this key's product environment: a test key never reaches a live user.
    if await _admin(request).env_user(caller.product, caller.env, user_id) is None:
        raise HubError(404, "user.not_found")
    return user_id


@api.route(
    "GET",
    "/api/v1/users/{user_id}",
    summary="A user of the key's environment",
    guard=server_key("users:read"),
    answers={200: USER_ANSWER, 404: "user.not_found", 429: "rate_limited"},
)
async def get_user_route(request: Request, caller: ServerCaller) -> Response:
    user_id = path_id(request, "user_id", "user.not_found")
    user = await _admin(request).env_user(caller.product, caller.env, user_id)
    if user is None:
        raise HubError(404, "user.not_found")
    return JSONResponse({"user": user.public()})


@api.route(
    "POST",
    "/api/v1/users/{user_id}/tokens",
    summary="Mint an access token for a user",
    guard=server_key("users:write"),
    answers={201: TOKEN_ANSWER, 404: "user.not_found", 429: "rate_limited"},
)
async def mint_token(request: Request, caller: ServerCaller) -> Response:
    user_id = await _user_of(request, caller)
    tokens = auth_services(request).tokens
    return JSONResponse(
        await tokens.mint_access_token(caller.product, caller.env, user_id), status_code=201
    )


# -- keys --------------------------------------------------------------------------------


def _may_handle(caller: ServerCaller, key: keys.ProductKey) -> bool:
    """A secret key manages every key of its environment; a restricted key only restricted
    keys within its own scopes (rotating the secret key would hand it full access, rotating
    the publishable key would take the product's frontend offline)."""
    if caller.kind == "secret":
        return True
    return key.kind == "restricted" and set(key.scopes or ()) <= (caller.scopes or set())


async def _key_of(request: Request, caller: ServerCaller) -> keys.ProductKey:
    key_id = path_id(request, "key_id", "key.not_found")
    key = await _admin(request).key(caller.product, caller.env, key_id)
    if key is None:
        raise HubError(404, "key.not_found")
    if not _may_handle(caller, key):
        raise forbidden()
    return key


def _shown_once(key: keys.ProductKey, plaintext: str) -> dict[str, Any]:
    return {**key.public(), "key": plaintext}


@keys_api.route(
    "GET",
    "/api/v1/keys",
    summary="The environment's keys (no plaintext)",
    guard=server_key("keys:write"),
    answers={
        200: obj(["keys"], keys={"type": "array", "items": PRODUCT_KEY}),
        429: "rate_limited",
    },
)
async def list_keys(request: Request, caller: ServerCaller) -> Response:
    found = await _admin(request).list_keys(caller.product, caller.env)
    return JSONResponse({"keys": [k.public() for k in found]})


@keys_api.route(
    "POST",
    "/api/v1/keys",
    summary="Create a restricted key (its plaintext is in this answer only)",
    guard=server_key("keys:write"),
    body=CreateKey,
    answers={201: PRODUCT_KEY, 409: "key.too_many", 429: "rate_limited"},
)
async def create_key(request: Request, caller: ServerCaller, body: CreateKey) -> Response:
    """A new restricted key; its plaintext is in this answer and nowhere else."""
    if caller.kind != "secret" and not set(body.scopes) <= (caller.scopes or set()):
        raise forbidden()
    key, plaintext = await _admin(request).create_restricted_key(
        caller.product, caller.env, scopes=body.scopes, name=body.name
    )
    return JSONResponse(_shown_once(key, plaintext), status_code=201)


@keys_api.route(
    "POST",
    "/api/v1/keys/{key_id}/rotate",
    summary="Replace a key; the old one stops working at once",
    guard=server_key("keys:write"),
    answers={201: PRODUCT_KEY, 404: "key.not_found", 409: "key.revoked", 429: "rate_limited"},
)
async def rotate_key(request: Request, caller: ServerCaller) -> Response:
    """A new key in place of this one, which stops working at once (no grace window)."""
    key = await _key_of(request, caller)
    if not key.active:
        raise HubError(409, "key.revoked")
    try:
        new_key, plaintext = await _admin(request).rotate_key(key)
    except LookupError:
        raise HubError(409, "key.revoked") from None
    return JSONResponse(_shown_once(new_key, plaintext), status_code=201)


@keys_api.route(
    "DELETE",
    "/api/v1/keys/{key_id}",
    summary="Revoke a restricted key",
    guard=server_key("keys:write"),
    answers={
        204: Answer("Revoked"),
        404: "key.not_found",
        409: "key.rotate_instead",
        429: "rate_limited",
    },
)
async def revoke_key(request: Request, caller: ServerCaller) -> Response:
    key = await _key_of(request, caller)
    if key.kind != "restricted":
        # One publishable and one secret key must stay active: those are rotated instead.
        raise HubError(409, "key.rotate_instead")
    await _admin(request).revoke_key(key)
    return Response(status_code=204)


# -- product settings --------------------------------------------------------------------


def _product_answer(caller: ServerCaller, product: Product) -> Response:
    return JSONResponse(
        {
            "product": {
                "id": product.id,
                "slug": product.slug,
                "name": product.name,
                "env": caller.env,
                "default_locale": product.default_locale,
                "origins": list(product.origins),
                "alert_webhook_url": product.alert_webhook_url,
                "alert_email": product.alert_email,
                "alert_slack_url": product.alert_slack_url,
                "require_verified_email": product.require_verified_email,
                "verify_url_template": product.verify_url_template,
                "reset_url_template": product.reset_url_template,
            }
        }
    )


class SecretKeyGuard:
    """`server_key(scope)`, then the secret key only (a restricted key holding the scope is
    refused: product settings are the secret key's), and with `live_only` only a live one
    (a test key must not change what production uses). A guard, so these 403s come before
    the body is read, as they always did."""

    def __init__(self, scope: str, *, live_only: bool = False) -> None:
        self._inner = server_key(scope)
        self._live_only = live_only
        self.scheme_name = self._inner.scheme_name
        self.scheme = self._inner.scheme
        self.schemes = self._inner.schemes
        live = "live " if live_only else ""
        self.description = f"The {live}secret key (a restricted key with `{scope}` is refused)."

    async def __call__(self, connection: HTTPConnection) -> ServerCaller:
        caller = await self._inner(connection)
        if caller.kind != "secret" or (self._live_only and caller.env != "live"):
            raise forbidden()
        return caller


@keys_api.route(
    "GET",
    "/api/v1/product",
    summary="The product's settings (secret key only)",
    guard=SecretKeyGuard("product:settings"),
    answers={200: PRODUCT, 429: "rate_limited"},
)
async def get_product_settings(request: Request, caller: ServerCaller) -> Response:
    return _product_answer(caller, caller.product)


@keys_api.route(
    "PATCH",
    "/api/v1/product",
    summary="Change only the named settings: origins, alert destinations, email verification,"
    " link templates (live secret key only; an unknown field is a 422, {} changes nothing)",
    guard=SecretKeyGuard("product:settings", live_only=True),
    body=ProductSettings,
    answers={200: PRODUCT, 429: "rate_limited"},
)
async def update_product_settings(
    request: Request, caller: ServerCaller, body: ProductSettings
) -> Response:
    """Change only the fields the body names: `origins` (exact scheme://host[:port], no
    wildcards), the alert destinations `alert_webhook_url`, `alert_slack_url` (each judged:
    https and public in production) and `alert_email`, `require_verified_email`,
    `verify_url_template` and
    `reset_url_template` (absolute https:// links with `{token}`, http:// too outside
    production; "" or null for the default link). `{}` changes nothing and answers 200."""
    changes = {"alert_webhook": body.alert_webhook_url} if body.names_webhook else {}
    if body.names_slack:
        changes["alert_slack"] = body.alert_slack_url
    product = await _admin(request).update_settings(
        caller.product,
        origins=body.origins,
        alert_email=body.alert_email,
        **changes,
        require_verified_email=body.require_verified_email,
        verify_url_template=body.verify_url_template,
        reset_url_template=body.reset_url_template,
        https_only=app_settings(request).production,
    )
    return _product_answer(caller, product)


routes = [*api.routes, *keys_api.routes]
