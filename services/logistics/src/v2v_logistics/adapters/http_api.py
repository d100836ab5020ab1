"""HTTP API (FastAPI) over the same application as gRPC; OpenAPI at /openapi.json.

Sites authenticate with consortium-signed bearer tokens (the caller's site comes from the
token, never from the body); couriers with courier tokens (`courier_api`). The courier web
page (`/courier`, `/courier/static/...`) is public: it holds no data until a courier logs in.
Refusals are problem+json documents with a 4xx status; custody refusals carry `reason_code`.
Every route declares its `Access` (`openapi_extra`, the gRPC twin's from `grpc_api.ACCESS`):
only the shipment's parties act on or read it; to any other site it is 404, as if absent.
A body's `department` names the calling site's department it acts for (`collection`, `gmp`,
`qc`, `ward`): the caller acts in the role that department stands for, which its token must
hold (403 otherwise).
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from v2v_logistics.adapters.courier_access import note_coi
from v2v_logistics.adapters.courier_api import courier_router
from v2v_logistics.adapters.courier_page import router as courier_page_router
from v2v_logistics.adapters.courier_tokens import CourierTokens
from v2v_logistics.adapters.grpc_api import ACCESS, acting_for, roles_of
from v2v_logistics.application import (
    LogisticsApplication,
    NewShipment,
    ScanRefusedAtCreation,
    UnitNotFound,
)
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.values import (
    ExceptionKind,
    Reading,
    parse_condition,
    parse_enum,
)
from v2v_logistics.views import ShipmentView
from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.http_api import (
    Finite,
    FreeText,
    IdText,
    Items,
    NameText,
    SiteTokenVerifier,
    create_app,
    problem,
    require_roles,
)
from v2v_platform.limits import MAX_READINGS
from v2v_platform.scope import Scope

CUSTODY_REFUSED = "Refused by a custody rule"


class Operator(BaseModel):
    user_id: IdText
    printed_name: NameText


class Command(BaseModel):
    operator: Operator


class CreateShipment(Command):
    manifest: Items[IdText]
    condition: IdText
    destination_site_id: IdText
    shipper_id: IdText
    data_logger_id: IdText
    courier_id: IdText = ""
    department: IdText = ""
    """The calling site's department that ships it ("": the site as a whole)."""
    destination_department: IdText = ""
    """The destination's department that takes it; within one site, both are named."""
    created_at: datetime | None = None
    """When it was created (packed), the clinical time (absent: now)."""


class AssignCourier(Command):
    courier_id: IdText
    department: IdText = ""


class Signature(BaseModel):
    user_id: IdText
    printed_name: NameText
    meaning: IdText
    signed_at: datetime


class Override(BaseModel):
    reason: FreeText
    signature: Signature


class ReceiveShipment(Command):
    """Scanned labels as read: a refusal records and repeats at most 256 characters of each."""

    scanned_labels: Items[str]
    from_party: NameText = ""
    """Optional: when given, it must name the custodian (who offered the shipment)."""
    window_override: Override | None = None
    department: IdText = ""
    """The calling site's department that takes it, when the shipment goes to it."""
    received_at: datetime | None = None
    """When it was received, the clinical time (absent: now); the window is judged on it."""


class InspectReceipt(Command):
    intact: bool
    temperature_log_reviewed: bool
    notes: FreeText = ""
    inspected_at: datetime | None = None
    """When it was inspected, the clinical time (absent: now); not before the receipt."""


class RecordException(Command):
    kind: IdText
    reason: FreeText
    occurred_at: datetime | None = None
    """When it happened, the clinical time (absent: now); not before the shipment's creation."""


class TemperatureReading(BaseModel):
    measured_at: datetime
    temperature_c: Finite
    device_id: IdText


class UploadReadings(Command):
    readings: Annotated[list[TemperatureReading], Field(max_length=MAX_READINGS)]


def override_of(given: Override | None) -> WindowOverride | None:
    if given is None:
        return None
    s = given.signature
    return WindowOverride(
        given.reason, SignatureManifestation(s.user_id, s.printed_name, s.meaning, s.signed_at)
    )


def custody_refused(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ScanRefused | ScanRefusedAtCreation)
    if isinstance(error, ScanRefused):
        note_coi(request, error.coi)
    missing = list(error.mismatch.missing_dins) if isinstance(error, ScanRefused) else []
    extra: dict[str, Any] = {"reason_code": error.reason_code}
    if missing:
        extra["missing"] = missing
    return problem(409, CUSTODY_REFUSED, str(error), "custody-refused", **extra)


def unit_not_found(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, UnitNotFound)
    return problem(404, error.title, str(error), error.slug, reason_code=error.reason_code)


def shipment_json(view: ShipmentView) -> dict[str, Any]:
    return asdict(view)


def create_http_app(
    application: LogisticsApplication, verifier: SiteTokenVerifier, tokens: CourierTokens
) -> FastAPI:
    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *roles_of(method))

    Shipper = Annotated[CallerIdentity, Depends(caller_for("CreateShipment"))]
    Assigner = Annotated[CallerIdentity, Depends(caller_for("AssignCourier"))]
    Receiver = Annotated[CallerIdentity, Depends(caller_for("ReceiveShipment"))]
    Inspector = Annotated[CallerIdentity, Depends(caller_for("InspectReceipt"))]
    Reporter = Annotated[CallerIdentity, Depends(caller_for("RecordException"))]
    Uploader = Annotated[CallerIdentity, Depends(caller_for("UploadTemperatureReadings"))]
    Reader = Annotated[CallerIdentity, Depends(caller_for("GetShipment"))]

    def acting(
        caller: CallerIdentity, method: str, body: Command, reason: str = "", department: str = ""
    ) -> Attribution:
        operator = body.operator
        return acting_for(
            caller, method, operator.user_id, operator.printed_name, reason, department
        )

    def declared(method: str) -> dict[str, Any]:
        return ACCESS[method].openapi()

    app = create_app(
        "v2v logistics", "1", "Shipments, custody handoffs, temperatures and courier scanning."
    )
    app.add_exception_handler(ScanRefused, custody_refused)
    app.add_exception_handler(ScanRefusedAtCreation, custody_refused)
    app.add_exception_handler(UnitNotFound, unit_not_found)
    app.include_router(courier_router(application, tokens))
    app.include_router(courier_page_router)

    @app.post("/v1/shipments", status_code=201, openapi_extra=declared("CreateShipment"))
    def create(body: CreateShipment, caller: Shipper) -> Any:
        plan = NewShipment(
            body.manifest,
            parse_condition(body.condition),
            body.destination_site_id,
            body.shipper_id,
            body.data_logger_id,
            body.courier_id,
            body.department,
            body.destination_department,
            body.created_at,
        )
        by = acting(caller, "CreateShipment", body, department=body.department)
        view = application.create_shipment(plan, by)
        return shipment_json(view)

    @app.get("/v1/shipments/{shipment_id}", openapi_extra=declared("GetShipment"))
    def get(shipment_id: str, caller: Reader) -> Any:
        return shipment_json(application.shipment(shipment_id, Scope.of(caller)))

    @app.post("/v1/shipments/{shipment_id}/courier", openapi_extra=declared("AssignCourier"))
    def assign(shipment_id: str, body: AssignCourier, caller: Assigner) -> Any:
        by = acting(caller, "AssignCourier", body, department=body.department)
        view = application.assign_courier(shipment_id, body.courier_id, by, body.department)
        return shipment_json(view)

    @app.post("/v1/shipments/{shipment_id}/receipt", openapi_extra=declared("ReceiveShipment"))
    def receive(shipment_id: str, body: ReceiveShipment, caller: Receiver) -> Any:
        by = acting(caller, "ReceiveShipment", body, department=body.department)
        view = application.receive_shipment(
            shipment_id,
            body.scanned_labels,
            body.from_party,
            override_of(body.window_override),
            by,
            department=body.department,
            received_at=body.received_at,
        )
        return shipment_json(view)

    @app.post("/v1/shipments/{shipment_id}/inspection", openapi_extra=declared("InspectReceipt"))
    def inspect(shipment_id: str, body: InspectReceipt, caller: Inspector) -> Any:
        by = acting(caller, "InspectReceipt", body)
        view = application.inspect_receipt(
            shipment_id,
            body.intact,
            body.temperature_log_reviewed,
            body.notes,
            by,
            body.inspected_at,
        )
        return shipment_json(view)

    @app.post("/v1/shipments/{shipment_id}/exception", openapi_extra=declared("RecordException"))
    def exception(shipment_id: str, body: RecordException, caller: Reporter) -> Any:
        kind = parse_enum(ExceptionKind, body.kind, "exception kind")
        by = acting(caller, "RecordException", body, body.reason)
        view = application.record_exception(shipment_id, kind, by, body.occurred_at)
        return shipment_json(view)

    @app.post(
        "/v1/shipments/{shipment_id}/temperature-readings",
        openapi_extra=declared("UploadTemperatureReadings"),
    )
    def upload(shipment_id: str, body: UploadReadings, caller: Uploader) -> Any:
        readings = [Reading(r.measured_at, r.temperature_c, r.device_id) for r in body.readings]
        by = acting(caller, "UploadTemperatureReadings", body)
        return asdict(application.upload_readings(shipment_id, readings, by))

    return app
