"""The access log of courier-token requests (`v2v_platform.access_log`, logger `v2v.access`).

The platform logs every request made with a site credential; a courier token is this
service's own credential, so this middleware logs each request a courier token
authenticated, allowed or refused: the courier's site and role, the route with the shipment
id and courier id it named, the COI of that shipment (noted by the handler once the courier
is known to be one of its parties; `-` otherwise) and the status. Requests refused before a
courier was identified (401) are logged by the platform's middleware. No personal data:
request bodies are not logged.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from v2v_platform import access_log
from v2v_platform.auth.identity import Role

COURIER_STATE = "v2v_courier"
COI_STATE = "v2v_coi"
MAX_SHOWN = 64


def note_courier(request: Request, courier: Any) -> None:
    """The courier a token identified (a `CourierIdentity`), for the access log."""
    setattr(request.state, COURIER_STATE, courier)


def note_coi(request: Request, coi: str) -> None:
    """The COI of the shipment the request acted on or read, for the access log."""
    setattr(request.state, COI_STATE, coi)


class CourierAccessLog:
    """ASGI middleware: one access-log line per courier-authenticated request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            log_courier_request(scope, status)


def log_courier_request(scope: Scope, status: int) -> None:
    state = scope.get("state") or {}
    courier = state.get(COURIER_STATE)
    if courier is None:
        return  # no courier token involved
    route = scope.get("route")
    what = f"{scope['method']} {getattr(route, 'path', scope['path'])}"
    shipment_id = str((scope.get("path_params") or {}).get("shipment_id", ""))
    if shipment_id:
        what += f" shipment={shipment_id[:MAX_SHOWN]}"
    what += f" courier={courier.courier_id}"
    coi = str(state.get(COI_STATE) or "")
    access_log.record("http", courier.site_id, (Role.COURIER,), what, coi, str(status))
