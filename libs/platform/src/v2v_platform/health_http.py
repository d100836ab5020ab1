"""GET /ready and GET /live on a service's HTTP API: its health report, over HTTP.

`/ready`: 200 {"status": "ready"} while every part is alive and progressing, else 503
problem+json (`urn:v2v:problem:not-ready`) whose `detail` and `reasons` say why. `/live`: 200
{"status": "live"} while no part stopped, else 503 (`urn:v2v:problem:not-live`). No token: a
probe has none, and the reasons name parts and errors, never personal data. Left out of the
OpenAPI document (they are operations endpoints, not the service's API contract).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from v2v_platform.health import ServiceHealth
from v2v_platform.http_api import problem


def add_health_routes(app: FastAPI, health: ServiceHealth) -> None:
    def ready() -> Any:
        report = health.report()
        if report.ready:
            return JSONResponse({"status": "ready"})
        return _unhealthy("Not ready", "not-ready", report.reasons)

    def live() -> Any:
        report = health.report()
        if report.live:
            return JSONResponse({"status": "live"})
        stopped = [p.text for p in report.problems if p.kind == "stopped"]
        return _unhealthy("Not live", "not-live", stopped)

    app.add_api_route("/ready", ready, methods=["GET"], include_in_schema=False)
    app.add_api_route("/live", live, methods=["GET"], include_in_schema=False)


def _unhealthy(title: str, slug: str, reasons: list[str]) -> JSONResponse:
    response = problem(503, title, "; ".join(reasons), slug, reasons=reasons)
    response.headers["Cache-Control"] = "no-store"
    return response
