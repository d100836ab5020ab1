"""The courier HTTP API (`/v1/courier/...`), shared with the courier web page.

Couriers authenticate with a courier bearer token (one courier at one site): the token names
the courier, the only party a courier acts as. A token issued with the courier's password is
accepted once the courier signed in with it (`POST /login`: the password is asked at login
only, the token identifies the courier afterwards). A courier acts on and reads only the
shipments assigned to or held by them (to them any other is 404, as if absent, and nothing is
recorded). Custody passes by two calls: the holder offers the shipment (`offer`), the
receiver scans every unit and confirms (`handoff`); a `from_party` is an optional claim that
must name the holder. Scans, offers and handoffs carry a client-generated idempotency key and
the device's time: the same key sent again gets the same status and body, without applying
anything twice. Refusals are problem+json documents (409) with a `reason_code` member; they
are recorded (I2). Every route declares its `Access` (`openapi_extra`) and every request a
courier token authenticated is in the access log (`courier_access`).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from v2v_logistics.adapters.courier_access import note_coi, note_courier
from v2v_logistics.adapters.courier_tokens import CourierIdentity, CourierTokens
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.values import ScanAttempt, courier_party
from v2v_logistics.views import CourierShipmentView
from v2v_platform import telemetry
from v2v_platform.access_policy import Relation, reads, writes
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import Role
from v2v_platform.http_api import IdText, NameText, Password

_courier_bearer = HTTPBearer(auto_error=False, scheme_name="CourierToken")

COURIER_LOGIN = writes(Relation.NO_PATIENT_DATA, Role.COURIER)
COURIER_ME = reads(Relation.NO_PATIENT_DATA, Role.COURIER)
COURIER_SHIPMENTS = reads(Relation.FILTERED, Role.COURIER)
COURIER_SCAN = writes(Relation.SHIPMENT, Role.COURIER)
COURIER_OFFER = writes(Relation.SHIPMENT, Role.COURIER)
COURIER_HANDOFF = writes(Relation.SHIPMENT, Role.COURIER)
"""The courier routes' declared access: a courier token holds the courier role only."""


class Scan(BaseModel):
    """The label as scanned: a refusal records and repeats at most 256 characters of it."""

    idempotency_key: IdText
    scanned_at: datetime
    from_party: NameText = ""
    """Optional claim: when given, it must name the shipment's holder."""
    label: str


class Handoff(BaseModel):
    idempotency_key: IdText
    scanned_at: datetime
    from_party: NameText = ""
    """Optional claim: when given, it must name the shipment's holder (who offered it)."""


class SignIn(BaseModel):
    """The courier's password (empty for a token issued without one)."""

    password: Password


class Offer(BaseModel):
    """The holder offers the shipment to the party who takes it next."""

    idempotency_key: IdText
    scanned_at: datetime
    to_party: NameText


def courier_dependency(tokens: CourierTokens) -> Callable[..., CourierIdentity]:
    def dependency(
        request: Request,
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
        if not courier.signed_in:
            raise StarletteHTTPException(
                401, "sign in with your password first", {"WWW-Authenticate": "Bearer"}
            )
        note_courier(request, courier)
        return courier

    return dependency


def me_json(courier: CourierIdentity) -> dict[str, str]:
    return {
        "courier_id": courier.courier_id,
        "printed_name": courier.printed_name,
        "site_id": courier.site_id,
    }


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
        "origin_party": shipment.origin_party,
        "destination_party": shipment.destination_party,
        "custodian": shipment.custodian,
        "manifest": shipment.manifest,
        "scanned": view.scanned,
        "window_ends_at": ends.isoformat().replace("+00:00", "Z") if ends else None,
        "offered_to": shipment.offered_to,
    }


def courier_router(app: LogisticsApplication, tokens: CourierTokens) -> APIRouter:
    router = APIRouter(prefix="/v1/courier", tags=["courier"])
    Courier = Annotated[CourierIdentity, Depends(courier_dependency(tokens))]

    @router.post("/login", openapi_extra=COURIER_LOGIN.openapi())
    def login(
        body: SignIn,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_courier_bearer)],
    ) -> dict[str, str]:
        """Sign in: the token names the courier, the password proves the person."""
        token = credentials.credentials if credentials else ""
        courier = tokens.sign_in(token, body.password.get_secret_value()) if token else None
        if courier is None:
            raise StarletteHTTPException(
                401,
                "unknown, revoked or expired courier token, or a wrong password",
                {"WWW-Authenticate": "Bearer"},
            )
        note_courier(request, courier)
        return me_json(courier)

    @router.get("/me", openapi_extra=COURIER_ME.openapi())
    def me(courier: Courier) -> dict[str, str]:
        return me_json(courier)

    @router.get("/shipments", openapi_extra=COURIER_SHIPMENTS.openapi())
    def shipments(courier: Courier) -> dict[str, Any]:
        views = app.courier_shipments(courier.courier_id)
        return {"shipments": [shipment_json(view) for view in views]}

    @router.post("/shipments/{shipment_id}/scans", openapi_extra=COURIER_SCAN.openapi())
    def scan(shipment_id: str, body: Scan, courier: Courier, request: Request) -> dict[str, Any]:
        attempt = ScanAttempt(
            body.idempotency_key,
            body.scanned_at,
            body.from_party,
            courier_party(courier.courier_id),
            body.label,
        )
        outcome = app.scan(shipment_id, attempt, acting(courier))
        note_coi(request, app.shipment_coi(shipment_id))
        return {
            "outcome": "accepted",
            "din": outcome.din,
            "remaining": list(outcome.remaining),
            "late": outcome.late,
        }

    @router.post("/shipments/{shipment_id}/offer", openapi_extra=COURIER_OFFER.openapi())
    def offer(shipment_id: str, body: Offer, courier: Courier, request: Request) -> dict[str, Any]:
        attempt = ScanAttempt(
            body.idempotency_key,
            body.scanned_at,
            courier_party(courier.courier_id),
            body.to_party,
        )
        outcome = app.offer_handoff(shipment_id, attempt, acting(courier))
        note_coi(request, app.shipment_coi(shipment_id))
        return {
            "outcome": "offered",
            "custodian": outcome.custodian,
            "offered_to": outcome.offered_to,
            "status": outcome.status,
        }

    @router.post("/shipments/{shipment_id}/handoff", openapi_extra=COURIER_HANDOFF.openapi())
    def handoff(
        shipment_id: str, body: Handoff, courier: Courier, request: Request
    ) -> dict[str, Any]:
        attempt = ScanAttempt(
            body.idempotency_key,
            body.scanned_at,
            body.from_party,
            courier_party(courier.courier_id),
        )
        outcome = app.hand_over(shipment_id, attempt, acting(courier))
        note_coi(request, app.shipment_coi(shipment_id))
        return {"outcome": "accepted", "custodian": outcome.custodian, "status": outcome.status}

    return router
