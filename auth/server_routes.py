"""Server API of a product environment: its users, its keys and its settings.

Authenticated with a secret key (everything) or a restricted key (its scopes), always inside
that key's product environment: a test key never sees or changes live data.

- `POST /api/v1/users` (upsert by `external_id`), `POST /api/v1/users/{id}/tokens`: users:write
- `GET /api/v1/users/{id}`: users:read
- `GET|POST /api/v1/keys`, `POST /api/v1/keys/{id}/rotate`, `DELETE /api/v1/keys/{id}`:
  keys:write. A restricted key never grants or handles more than its own scopes, and never
  rotates the secret key (that would hand it full access).
- `GET|PATCH /api/v1/product` (origins, alert webhook, email verification, link templates):
  the secret key only. A PATCH changes only the fields it names; an unknown field is a 422.
  Product settings are product-wide, so only a live secret key may change them: a test
  key reads them but its PATCH is refused (403), and testing never changes production.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth import keys
from auth.credentials import ServerCaller
from auth.product_admin import ProductAdmin
from auth.products import Product, normalize_origin, normalize_url_template, normalize_webhook_url
from auth.services import auth_services
from auth.transport import server_key
from auth.webhook_targets import BlockedTarget
from infra.errors import HubError, forbidden
from infra.http import Fields, path_id, read_json

MAX_ORIGINS = 100
URL_TEMPLATE_FIELDS = ("verify_url_template", "reset_url_template")
SETTINGS_FIELDS = {"origins", "alert_webhook_url", "require_verified_email", *URL_TEMPLATE_FIELDS}


def _admin(request: Request) -> ProductAdmin:
    return auth_services(request).product_admin


async def _fields(request: Request) -> Fields:
    return Fields(await read_json(request, auth_services(request).settings.max_body_bytes))


# -- users -------------------------------------------------------------------------------


async def upsert_user(request: Request) -> Response:
    caller = await server_key("users:write")(request)
    fields = await _fields(request)
    external_id = fields.string("external_id", max_length=255)
    email = fields.email() if fields.body.get("email") is not None else None
    name = fields.string("name", required=False)
    locale = fields.locale()
    fields.check()
    user, created = await auth_services(request).accounts.upsert_user(
        caller.product, caller.env, external_id=external_id, email=email, name=name, locale=locale
    )
    return JSONResponse({"user": user}, status_code=201 if created else 200)


async def _user_of(request: Request, caller: ServerCaller) -> int:
    user_id = path_id(request, "user_id", "user.not_found")
    # Only users of this key's product environment: a test key never reaches a live user.
    if await _admin(request).env_user(caller.product, caller.env, user_id) is None:
        raise HubError(404, "user.not_found")
    return user_id


async def get_user_route(request: Request) -> Response:
    caller = await server_key("users:read")(request)
    user_id = path_id(request, "user_id", "user.not_found")
    user = await _admin(request).env_user(caller.product, caller.env, user_id)
    if user is None:
        raise HubError(404, "user.not_found")
    return JSONResponse({"user": user.public()})


async def mint_token(request: Request) -> Response:
    caller = await server_key("users:write")(request)
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


async def list_keys(request: Request) -> Response:
    caller = await server_key("keys:write")(request)
    found = await _admin(request).list_keys(caller.product, caller.env)
    return JSONResponse({"keys": [k.public() for k in found]})


async def create_key(request: Request) -> Response:
    """A new restricted key; its plaintext is in this answer and nowhere else."""
    caller = await server_key("keys:write")(request)
    fields = await _fields(request)
    name = fields.string("name", max_length=200)
    scopes = fields.body.get("scopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        fields.error("scopes", "field.required")
    elif unknown := [s for s in scopes if s not in keys.PRODUCT_SCOPES]:
        fields.error("scopes", "scope.unknown", scope=unknown[0])
    fields.check()
    if caller.kind != "secret" and not set(scopes) <= (caller.scopes or set()):
        raise forbidden()
    key, plaintext = await _admin(request).create_restricted_key(
        caller.product, caller.env, scopes=scopes, name=name
    )
    return JSONResponse(_shown_once(key, plaintext), status_code=201)


async def rotate_key(request: Request) -> Response:
    """A new key in place of this one, which stops working at once (no grace window)."""
    caller = await server_key("keys:write")(request)
    key = await _key_of(request, caller)
    if not key.active:
        raise HubError(409, "key.revoked")
    try:
        new_key, plaintext = await _admin(request).rotate_key(key)
    except LookupError:
        raise HubError(409, "key.revoked") from None
    return JSONResponse(_shown_once(new_key, plaintext), status_code=201)


async def revoke_key(request: Request) -> Response:
    caller = await server_key("keys:write")(request)
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
                "require_verified_email": product.require_verified_email,
                "verify_url_template": product.verify_url_template,
                "reset_url_template": product.reset_url_template,
            }
        }
    )


async def _secret_caller(request: Request) -> ServerCaller:
    caller = await server_key("product:settings")(request)
    if caller.kind != "secret":
        raise forbidden()
    return caller


async def get_product_settings(request: Request) -> Response:
    caller = await _secret_caller(request)
    return _product_answer(caller, caller.product)


def _url_template(fields: Fields, name: str, *, https_only: bool) -> str | None:
    """The named link template as stored ("" or null: the default link), or None when
    absent or refused (recorded in `fields`)."""
    if name not in fields.body:
        return None
    raw = fields.body[name]
    if raw is None or raw == "":
        return ""
    try:
        if not isinstance(raw, str):
            raise ValueError(name)
        return normalize_url_template(raw, https_only=https_only)  # its length is capped there
    except ValueError:
        fields.error(name, "field.not_url_template")
        return None


async def update_product_settings(request: Request) -> Response:
    """Change only the fields the body names: `origins` (exact scheme://host[:port], no
    wildcards), `alert_webhook_url`, `require_verified_email`, `verify_url_template` and
    `reset_url_template` (absolute https:// links with `{token}`, http:// too outside
    production; "" or null for the default link). `{}` changes nothing and answers 200."""
    caller = await _secret_caller(request)
    if caller.env != "live":
        # The settings are the product's, live included: a test key must not change them.
        raise forbidden()
    fields = await _fields(request)
    body = fields.body
    for name in sorted(set(body) - SETTINGS_FIELDS)[:1]:  # one is enough to fix the client
        fields.error(name, "field.unknown")
    origins: list[str] | None = None
    if "origins" in body:
        raw = body["origins"]
        if not isinstance(raw, list) or not all(isinstance(o, str) for o in raw):
            fields.error("origins", "field.not_list")
        elif len(raw) > MAX_ORIGINS:
            fields.error("origins", "field.too_many", max=MAX_ORIGINS)
        else:
            origins = []
            for index, origin in enumerate(raw):
                try:
                    origins.append(normalize_origin(origin))
                except ValueError:
                    fields.error(f"origins[{index}]", "origin.invalid")
    settings = auth_services(request).settings
    webhook = caller.product.alert_webhook_url
    if "alert_webhook_url" in body:
        raw = body["alert_webhook_url"]
        try:
            webhook = (
                None
                if raw in (None, "")
                else normalize_webhook_url(str(raw), strict=settings.strict_webhooks)
            )
        except BlockedTarget:
            fields.error("alert_webhook_url", "webhook.internal_address")
        except ValueError:
            fields.error("alert_webhook_url", "field.not_url")
    require = body.get("require_verified_email")
    if require is not None and not isinstance(require, bool):
        fields.error("require_verified_email", "field.not_boolean")
    verify_url, reset_url = (
        _url_template(fields, name, https_only=settings.production) for name in URL_TEMPLATE_FIELDS
    )
    fields.check()
    changes = {"alert_webhook": webhook} if "alert_webhook_url" in body else {}
    product = await _admin(request).update_settings(
        caller.product,
        origins=origins,
        **changes,
        require_verified_email=require,
        verify_url_template=verify_url,
        reset_url_template=reset_url,
        https_only=settings.production,
    )
    return _product_answer(caller, product)


routes = [
    Route("/api/v1/users", upsert_user, methods=["POST"]),
    Route("/api/v1/users/{user_id}", get_user_route, methods=["GET"]),
    Route("/api/v1/users/{user_id}/tokens", mint_token, methods=["POST"]),
    Route("/api/v1/keys", list_keys, methods=["GET"]),
    Route("/api/v1/keys", create_key, methods=["POST"]),
    Route("/api/v1/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
    Route("/api/v1/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/api/v1/product", get_product_settings, methods=["GET"]),
    Route("/api/v1/product", update_product_settings, methods=["PATCH"]),
]
