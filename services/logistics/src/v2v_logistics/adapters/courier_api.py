"""The courier HTTP API (`/v1/courier/...`), shared with the courier web page.

Couriers authenticate with a courier bearer token (one courier at one site). Scans and
handoffs carry a client-generated idempotency key and the device's scan time: the same key
sent again gets the same status and body, without applying anything twice. Refusals are
problem+json documents (409) with a `reason_code` member; they are recorded (I2).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from v2v_logistics.adapters.courier_tokens import CourierIdentity, CourierTokens
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.values import ScanAttempt, courier_party
from v2v_logistics.views import CourierShipmentView
from v2v_platform import telemetry
from v2v_platform.attribution import Attribution
from v2v_platform.http_api import IdText, NameText

_courier_bearer = HTTPBearer(auto_error=False, scheme_name="CourierToken")


class Scan(BaseModel):
    """The label as scanned: a refusal records and repeats at most 256 characters of it."""

    idempotency_key: IdText
    scanned_at: datetime
    from_party: NameText
    label: str


class Handoff(BaseModel):
    idempotency_key: IdText
    scanned_at: datetime
    from_party: NameText


def courier_dependency(tokens: CourierTokens) -> Callable[..., CourierIdentity]:
    def dependency(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_courier_bearer)],
    ) -> CourierIdentity:
        if credentials is None:
            raise StarletteHTTPException(
                401, "a courier token is required", {"WWW-Authenticate": "Bearer"}
            )
        courier = tokens.identify(credentials.credentials)
        if courier is None:
            raise StarletteHTTPException(
                401, "unknown or revoked courier token", {"WWW-Authenticate": "Bearer"}
            )
        return courier

    return dependency


def acting(courier: CourierIdentity) -> Attribution:
    return Attribution(
        courier.courier_id,
        courier.printed_name,
        "courier",
        courier.site_id,
        traceparent=telemetry.current_traceparent(),
    )


def shipment_json(view: CourierShipmentView) -> dict[str, Any]:
    shipment = view.shipment
    ends = shipment.window_ends_at
    return {
        "shipment_id": shipment.shipment_id,
        "coi": shipment.coi,
        "status": shipment.status,
        "condition": shipment.condition,
        "origin_site_id": shipment.origin_site_id,
        "destination_site_id": shipment.destination_site_id,
        "custodian": shipment.custodian,
        "manifest": shipment.manifest,
        "scanned": view.scanned,
        "window_ends_at": ends.isoformat().replace("+00:00", "Z") if ends else None,
    }


def courier_router(app: LogisticsApplication, tokens: CourierTokens) -> APIRouter:
    router = APIRouter(prefix="/v1/courier", tags=["courier"])
    Courier = Annotated[CourierIdentity, Depends(courier_dependency(tokens))]

    @router.get("/me")
    def me(courier: Courier) -> dict[str, str]:
        return {
            "courier_id": courier.courier_id,
            "printed_name": courier.printed_name,
            "site_id": courier.site_id,
        }

    @router.get("/shipments")
    def shipments(courier: Courier) -> dict[str, Any]:
        views = app.courier_shipments(courier.courier_id)
        return {"shipments": [shipment_json(view) for view in views]}

    @router.post("/shipments/{shipment_id}/scans")
    def scan(shipment_id: str, body: Scan, courier: Courier) -> dict[str, Any]:
        attempt = ScanAttempt(
            body.idempotency_key,
            body.scanned_at,
            body.from_party,
            courier_party(courier.courier_id),
            body.label,
        )
        outcome = app.scan(shipment_id, attempt, acting(courier))
        return {
            "outcome": "accepted",
            "din": outcome.din,
            "remaining": list(outcome.remaining),
            "late": outcome.late,
        }

    @router.post("/shipments/{shipment_id}/handoff")
    def handoff(shipment_id: str, body: Handoff, courier: Courier) -> dict[str, Any]:
        attempt = ScanAttempt(
            body.idempotency_key,
            body.scanned_at,
            body.from_party,
            courier_party(courier.courier_id),
        )
        outcome = app.hand_over(shipment_id, attempt, acting(courier))
        return {"outcome": "accepted", "custodian": outcome.custodian, "status": outcome.status}

    return router
