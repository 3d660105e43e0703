"""The demo page at `/demo/`: plain HTML, JavaScript and CSS (package data, `hub/static/demo`)
that goes through the public API and the cable as a product's frontend would.

It is served only where it can work, for one product. In development that is the `demo`
product the hub makes for itself (`ensure_demo_product`), or the one `HUB_DEMO_PRODUCT`
names; in production only a product `HUB_DEMO_PRODUCT` names, which must allow the hub's own
origin (start-up warns when it does not). Elsewhere `/demo` is the ordinary 404.

`/demo/config.js` tells the page its product and whether it runs in development, where it
shows what only development has: mail printed in the log, test notifications, `?product=`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

from databases import Database
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from auth import product_values, products
from infra.settings import Settings

logger = logging.getLogger("hub.demo")

# Package data (pyproject.toml), next to this module however the hub is installed.
STATIC_DIR = Path(__file__).resolve().with_name("static")
DEMO_SLUG = "demo"


def demo_product(settings: Settings) -> str | None:
    """The product the demo page is for; None where the page is not served."""
    if settings.demo_product:
        return settings.demo_product
    return None if settings.production else DEMO_SLUG


def _loopback_aliases(url: str) -> list[str]:
    """The hub's own origin, plus its other loopback spelling (localhost ↔ 127.0.0.1)."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    aliases = {"localhost": "127.0.0.1", "127.0.0.1": "localhost"}
    if parts.hostname in aliases:
        port = f":{parts.port}" if parts.port else ""
        return [origin, f"{parts.scheme}://{aliases[parts.hostname]}{port}"]
    return [origin]


async def ensure_demo_product(db: Database, settings: Settings) -> None:
    """Development only: a `demo` product whose allowed origin is the hub itself."""
    own_origins = _loopback_aliases(settings.public_url)
    demo = await products.get_product_by_slug(db, DEMO_SLUG)
    if demo is None:
        await products.create_product(db, slug=DEMO_SLUG, name="Demo", origins=own_origins)
        logger.info("created the development product %r for %s", DEMO_SLUG, own_origins[0])
    elif not set(own_origins) <= set(demo.origins):
        await products.set_origins(db, demo.id, [*demo.origins, *own_origins])


async def check_demo_product(db: Database, settings: Settings) -> None:
    """Warn at start when the page's product cannot serve it: the page's requests come from
    the hub's own origin, which the product must allow (its API refuses other origins)."""
    slug = demo_product(settings)
    if slug is None:
        return
    product = await products.get_product_by_slug(db, slug)
    if product is None:
        logger.warning(
            "HUB_DEMO_PRODUCT=%s: no such product; the demo page at /demo/ cannot log anyone "
            "in until it exists (notification-hub products create --slug %s --name %s --origin %s)",
            slug,
            slug,
            slug,
            settings.public_url,
        )
        return
    own_origin = _own_origin(settings)
    with contextlib.suppress(ValueError):  # products store their origins normalized
        own_origin = product_values.normalize_origin(own_origin)
    if not product.allows_origin(own_origin):
        logger.warning(
            "the demo page's product %r does not allow the hub's own origin %s (HUB_PUBLIC_URL): "
            "the page at /demo/ cannot call the API; add that origin to the product",
            slug,
            own_origin,
        )


def _own_origin(settings: Settings) -> str:
    parts = urlsplit(settings.public_url)
    return f"{parts.scheme}://{parts.netloc}"


async def _redirect(request: Request) -> Response:
    return RedirectResponse("/demo/")


def routes(settings: Settings) -> list[BaseRoute]:
    """The page's routes, or none where it is not served (then `/demo` is a 404)."""
    slug = demo_product(settings)
    if slug is None:
        return []
    config = {"product": slug, "development": not settings.production}
    # A script, not a fetch: the page knows its product before its own script runs.
    script = f"window.HUB_DEMO = {json.dumps(config)};\n"

    async def config_js(request: Request) -> Response:
        return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-cache"})

    return [
        Route("/demo", _redirect, methods=["GET"]),
        Route("/demo/config.js", config_js, methods=["GET"]),
        Mount("/demo", StaticFiles(directory=STATIC_DIR / "demo", html=True), name="demo"),
    ]
