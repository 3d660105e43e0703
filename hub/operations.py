"""The operator's endpoints: liveness, readiness and Prometheus metrics, declared like every
other route (`infra.api`) so the API document lists them and their guards."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.answers import STRING, STRINGS, obj
from auth.transport import METRICS_TOKEN, PUBLIC
from hub.services import services
from infra.api import Answer, Endpoints
from infra.metrics import exposition

logger = logging.getLogger("hub.operations")

api = Endpoints(tags=["operations"])

STATUS = obj(["status"], status=STRING)


@api.route("GET", "/healthz", summary="The process is alive", guard=PUBLIC, answers={200: STATUS})
async def healthz(request: Request, caller: None) -> Response:
    return JSONResponse({"status": "ok"})


@api.route(
    "GET",
    "/readyz",
    summary="SQL and the broker answer",
    guard=PUBLIC,
    answers={
        200: STATUS,
        503: Answer("A part is unreachable", obj(["status", "failing"], failing=STRINGS)),
    },
)
async def readyz(request: Request, caller: None) -> Response:
    hub = services(request)
    failing = []
    try:
        await hub.db.fetch_val("SELECT 1")
    except Exception:
        failing.append("sql")
    if not await hub.broker.ping():
        failing.append("broker")
    if failing:
        logger.warning("readiness: %s unreachable", ", ".join(failing))
        return JSONResponse({"status": "unavailable", "failing": failing}, status_code=503)
    return JSONResponse({"status": "ok"})


@api.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    guard=METRICS_TOKEN,
    answers={200: Answer("Text exposition format", STRING, "text/plain")},
)
async def metrics(request: Request, caller: None) -> Response:
    """Prometheus metrics; with `HUB_METRICS_TOKEN` set, only for `Bearer <that token>`."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)


routes = api.routes
