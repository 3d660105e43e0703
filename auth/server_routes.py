"""Server API for products that keep their own login: upsert users, mint their access tokens.

Authenticated with the product's secret key; everything happens in that key's environment.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from auth.accounts import resolve_recipients
from auth.keys import require_server_key
from auth.service import Auth
from hub.errors import HubError
from hub.http import Fields, read_json


def _auth(request: Request) -> Auth:
    return request.app.state.auth


async def upsert_user(request: Request) -> Response:
    key = await require_server_key(request)
    auth = _auth(request)
    fields = Fields(await read_json(request, auth.settings.max_body_bytes))
    external_id = fields.string("external_id", max_length=255)
    email = fields.email() if fields.body.get("email") is not None else None
    name = fields.string("name", required=False)
    locale = fields.locale()
    fields.check()
    user, created = await auth.upsert_user(
        key.product, key.env, external_id=external_id, email=email, name=name, locale=locale
    )
    return JSONResponse({"user": user}, status_code=201 if created else 200)


async def mint_token(request: Request) -> Response:
    key = await require_server_key(request)
    try:
        user_id = int(request.path_params["user_id"])
    except ValueError:
        raise HubError(404, "user.not_found") from None
    auth = _auth(request)
    # Only users of this key's product environment: a test key never mints a live user's token.
    found = await resolve_recipients(auth.db, key.product.id, key.env, user_ids=[user_id])
    if not found:
        raise HubError(404, "user.not_found")
    return JSONResponse(
        await auth.mint_access_token(key.product, key.env, user_id), status_code=201
    )


routes = [
    Route("/api/v1/users", upsert_user, methods=["POST"]),
    Route("/api/v1/users/{user_id}/tokens", mint_token, methods=["POST"]),
]
