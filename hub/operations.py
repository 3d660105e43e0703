"""The operator's endpoints: liveness, readiness and Prometheus metrics, declared like every
other route (`infra.api`) so the API document lists them and their guards."""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from auth.answers import STRING, STRINGS, obj
from auth.transport import METRICS_TOKEN, PUBLIC
from hub.migrate import head_revision, schema_revision
from hub.services import services
from infra.api import ERROR, Answer, Endpoints
from infra.errors import error_body, request_locale
from infra.metrics import exposition

# How long /readyz waits for the database's, and then the broker's, answer before calling it
# failing (a Redis that hangs without refusing connections held the probe for 15 s).
READY_PROBE_SECONDS = 2.0
logger = logging.getLogger("hub.operations")

api = Endpoints(tags=["operations"])

STATUS = obj(["status"], status=STRING)


@api.route("GET", "/healthz", summary="The process is alive", guard=PUBLIC, answers={200: STATUS})
async def healthz(request: Request, caller: None) -> Response:
    return JSONResponse({"status": "ok"})


@api.route(
    "GET",
    "/readyz",
    summary="SQL answers at the newest schema, and the broker answers",
    guard=PUBLIC,
    answers={
        200: STATUS,
        503: Answer(
            "A part is unreachable (`sql`, `broker`), or the database is not at the schema"
            " this hub needs (`schema`: run `notification-hub migrate`); with the `Error`"
            " shape's `error` (code `server.unavailable`) beside",
            obj(
                ["status", "failing", "error"],
                failing=STRINGS,
                error=ERROR.schema["properties"]["error"],
            ),
        ),
    },
)
async def readyz(request: Request, caller: None) -> Response:
    hub = services(request)
    failing = []
    try:
        # One small query: the database answers, and says which schema it has.
        # Bounded: a lock on alembic_version (a migration running) would hold it for the
        # statement timeout, and the probe that asked would give up on us first.
        revision = await asyncio.wait_for(schema_revision(hub.db), READY_PROBE_SECONDS)
    except Exception:  # TimeoutError among them
        failing.append("sql")
    else:
        if revision != head_revision():  # read from the migration files once
            failing.append("schema")
    try:
        broker_answers = await asyncio.wait_for(hub.broker.ping(), READY_PROBE_SECONDS)
    except TimeoutError:
        broker_answers = False
    if not broker_answers:
        failing.append("broker")
    if failing:
        logger.warning("readiness: %s failing", ", ".join(failing))
        body = {
            "status": "unavailable",
            "failing": failing,
            **error_body("server.unavailable", request_locale(request)),
        }
        return JSONResponse(body, status_code=503)
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
