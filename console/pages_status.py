"""A product's live status in the console (everyone with a role): its open sockets, the
notifications delivered to them per second over the last minute and their publish-to-send
latency, summed over every running hub process (`infra.live_status`), with one row per
process. The page refreshes itself (a meta refresh: the console runs no script); the JSON
twin gives the same numbers to anything else that polls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from console.guard import require
from console.pages_products import product_context
from console.web import page, render
from infra.live_status import LiveStatus, ProductStatus

REFRESH_SECONDS = 5


def _live_status(request: Request) -> LiveStatus:
    return request.app.state.services.live_status


def _milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _when(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_document(status: ProductStatus) -> dict[str, Any]:
    """The numbers as the JSON twin answers them (and the page shows them)."""
    return {
        "connections": status.connections,
        "deliveries_per_second": round(status.deliveries_per_second, 3),
        "latency_ms": {"p50": _milliseconds(status.p50), "p99": _milliseconds(status.p99)},
        "newest_snapshot_at": _when(status.newest),
        "processes": [
            {
                "process": row.process,
                "host": row.host,
                "pid": row.pid,
                "connections": row.connections,
                "uptime_seconds": round(row.uptime),
                "snapshot_at": _when(row.at),
            }
            for row in status.processes
        ],
    }


@page
async def status_page(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.view")
    status = await _live_status(request).product(access.product.id)
    context = product_context(
        access, status=status_document(status), refresh_seconds=REFRESH_SECONDS
    )
    return render(request, "status.html", context)


@page
async def status_json(request: Request) -> Response:
    access = await require(request, request.path_params["slug"], "product.view")
    status = await _live_status(request).product(access.product.id)
    return JSONResponse(status_document(status))
