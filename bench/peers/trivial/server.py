"""The trivial endpoint the publisher's self-check drives: Starlette on uvicorn, answering
`POST /publish` with `{"count": 1}` without reading anything else, so the requests/s measured
against it are the publisher's ceiling on this machine, not a server's.

Run by the self-check as one uvicorn process: `uvicorn server:app --app-dir bench/peers/trivial`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def publish(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"count": 1})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/publish", publish, methods=["POST"]), Route("/healthz", healthz)])
