"""HTTP API (FastAPI) over the same application as gRPC; OpenAPI at /openapi.json.

Sites authenticate with consortium-signed bearer tokens; the caller's site comes from the
token, never from the body. Refusals are problem+json documents with a 4xx status. Every
route declares the `Access` of its gRPC twin (`x-v2v-access` in its OpenAPI operation) and
checks the same roles.
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Response
from pydantic import AwareDatetime, BaseModel, Field

from v2v_manufacturing.adapters.grpc_api import ACCESS, acting_roles
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import MAX_PRODUCT_UNITS
from v2v_manufacturing.domain.values import (
    ProcessStep,
    QcResult,
    parse_condition,
    parse_step_kind,
)
from v2v_platform.access_policy import Relation, reads
from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.http_api import (
    Finite,
    FreeText,
    IdText,
    Items,
    NameText,
    SiteTokenVerifier,
    create_app,
    require_roles,
)
from v2v_platform.labels.service import PDF_RESPONSES, pdf_response
from v2v_platform.limits import MAX_PARAMETERS
from v2v_platform.proto_values import attribution
from v2v_platform.scope import Scope

PRODUCT_LABEL = reads(Relation.OWN_SITE, Role.MANUFACTURING)
"""A product unit's label: printed by the site that harvested it (any other: 404)."""


class Operator(BaseModel):
    user_id: IdText
    printed_name: NameText


class Command(BaseModel):
    operator: Operator


class SetCapacity(Command):
    capacity: int = Field(ge=0)


class BookSlot(Command):
    coi: IdText


class ReleaseSlot(Command):
    slot_id: IdText
    reason: FreeText


class ReceiveUnit(Command):
    """Scanned labels as read: a refusal records and repeats at most 256 characters of each."""

    scanned_din: str
    scanned_coi: str
    received_at: AwareDatetime | None = None


class Signature(BaseModel):
    user_id: IdText
    printed_name: NameText
    meaning: IdText
    signed_at: datetime


class Override(BaseModel):
    reason: FreeText
    signature: Signature


class StartBatch(Command):
    input_dins: Items[IdText]
    window_override: Override | None = None
    started_at: AwareDatetime | None = None


class RecordStep(Command):
    step_kind: IdText
    device_type: NameText
    device_serial: IdText
    reagent_lots: Items[IdText] = []
    vector_lot: IdText = ""
    parameters: Annotated[dict[IdText, NameText], Field(max_length=MAX_PARAMETERS)] = {}
    performed_at: AwareDatetime | None = None


class RecordQc(Command):
    test: IdText
    value: Finite
    unit: IdText
    passed: bool
    measured_at: AwareDatetime | None = None


class Harvest(Command):
    product_unit_count: int = Field(ge=1, le=MAX_PRODUCT_UNITS)
    hold_condition: IdText
    harvested_at: AwareDatetime | None = None


class FailBatch(Command):
    reason: FreeText
    failed_at: AwareDatetime | None = None


def override_of(body: StartBatch) -> WindowOverride | None:
    given = body.window_override
    if given is None:
        return None
    s = given.signature
    signature = SignatureManifestation(s.user_id, s.printed_name, s.meaning, s.signed_at)
    return WindowOverride(given.reason, signature)


def as_json(value: Any) -> Any:
    """Dataclass views -> JSON-able values."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def create_http_app(application: ManufacturingApplication, pki_dir: Path) -> FastAPI:
    verifier = SiteTokenVerifier(pki_dir / "ca.crt")

    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *ACCESS[method].roles)

    SetCapacityCaller = Annotated[CallerIdentity, Depends(caller_for("SetSlotCapacity"))]
    BookCaller = Annotated[CallerIdentity, Depends(caller_for("BookSlot"))]
    ReleaseCaller = Annotated[CallerIdentity, Depends(caller_for("ReleaseSlot"))]
    CalendarReader = Annotated[CallerIdentity, Depends(caller_for("GetSlotCalendar"))]
    ReceiptCaller = Annotated[CallerIdentity, Depends(caller_for("ReceiveUnit"))]
    StartCaller = Annotated[CallerIdentity, Depends(caller_for("StartBatch"))]
    StepCaller = Annotated[CallerIdentity, Depends(caller_for("RecordProcessStep"))]
    QcCaller = Annotated[CallerIdentity, Depends(caller_for("RecordInProcessQc"))]
    HarvestCaller = Annotated[CallerIdentity, Depends(caller_for("Harvest"))]
    FailCaller = Annotated[CallerIdentity, Depends(caller_for("FailBatch"))]
    BatchReader = Annotated[CallerIdentity, Depends(caller_for("GetBatch"))]
    ExpectedReader = Annotated[CallerIdentity, Depends(caller_for("ListExpectedUnits"))]
    LabelPrinter = Annotated[
        CallerIdentity, Depends(require_roles(lambda: verifier, *PRODUCT_LABEL.roles))
    ]

    def acting(caller: CallerIdentity, method: str, body: Command, reason: str = "") -> Attribution:
        operator = body.operator
        roles = acting_roles(method)
        return attribution(caller, roles, operator.user_id, operator.printed_name, reason)

    def declared(method: str) -> dict[str, Any]:
        return ACCESS[method].openapi()

    app = create_app("v2v manufacturing", "1", "Slot calendars, unit receipt, batches and lineage.")

    @app.put("/v1/calendars/{site_id}/{slot_date}", openapi_extra=declared("SetSlotCapacity"))
    def set_capacity(
        site_id: str, slot_date: str, body: SetCapacity, caller: SetCapacityCaller
    ) -> Any:
        by = acting(caller, "SetSlotCapacity", body)
        return as_json(application.set_slot_capacity(site_id, slot_date, body.capacity, by))

    @app.get("/v1/calendars/{site_id}/{slot_date}", openapi_extra=declared("GetSlotCalendar"))
    def calendar(site_id: str, slot_date: str, caller: CalendarReader) -> Any:
        return as_json(application.slot_calendar(site_id, slot_date, Scope.of(caller)))

    @app.post(
        "/v1/calendars/{site_id}/{slot_date}/bookings",
        status_code=201,
        openapi_extra=declared("BookSlot"),
    )
    def book(site_id: str, slot_date: str, body: BookSlot, caller: BookCaller) -> Any:
        by = acting(caller, "BookSlot", body)
        return as_json(application.book_slot(body.coi, site_id, slot_date, by))

    @app.post("/v1/slot-releases", status_code=204, openapi_extra=declared("ReleaseSlot"))
    def release(body: ReleaseSlot, caller: ReleaseCaller) -> None:
        application.release_slot(body.slot_id, acting(caller, "ReleaseSlot", body, body.reason))

    @app.post("/v1/receipts", status_code=201, openapi_extra=declared("ReceiveUnit"))
    def receive(body: ReceiveUnit, caller: ReceiptCaller) -> Any:
        by = acting(caller, "ReceiveUnit", body)
        receipt = application.receive_unit(body.scanned_din, body.scanned_coi, by, body.received_at)
        return as_json(receipt)

    @app.post("/v1/batches", status_code=201, openapi_extra=declared("StartBatch"))
    def start_batch(body: StartBatch, caller: StartCaller) -> Any:
        by = acting(caller, "StartBatch", body)
        view = application.start_batch(body.input_dins, override_of(body), by, body.started_at)
        return as_json(view)

    @app.post(
        "/v1/batches/{batch_id}/steps",
        status_code=204,
        openapi_extra=declared("RecordProcessStep"),
    )
    def record_step(batch_id: str, body: RecordStep, caller: StepCaller) -> None:
        step = ProcessStep(
            parse_step_kind(body.step_kind),
            body.device_type,
            body.device_serial,
            tuple(body.reagent_lots),
            body.vector_lot,
            dict(body.parameters),
        )
        by = acting(caller, "RecordProcessStep", body)
        application.record_process_step(batch_id, step, by, body.performed_at)

    @app.post(
        "/v1/batches/{batch_id}/qc-results",
        status_code=204,
        openapi_extra=declared("RecordInProcessQc"),
    )
    def record_qc(batch_id: str, body: RecordQc, caller: QcCaller) -> None:
        result = QcResult(body.test, body.value, body.unit, body.passed)
        by = acting(caller, "RecordInProcessQc", body)
        application.record_in_process_qc(batch_id, result, by, body.measured_at)

    @app.post("/v1/batches/{batch_id}/harvest", status_code=201, openapi_extra=declared("Harvest"))
    def harvest(batch_id: str, body: Harvest, caller: HarvestCaller) -> Any:
        hold = parse_condition(body.hold_condition)
        by = acting(caller, "Harvest", body)
        count = body.product_unit_count
        dins = application.harvest(batch_id, count, hold, by, body.harvested_at)
        return {"product_dins": dins}

    @app.post(
        "/v1/batches/{batch_id}/failure", status_code=204, openapi_extra=declared("FailBatch")
    )
    def fail(batch_id: str, body: FailBatch, caller: FailCaller) -> None:
        by = acting(caller, "FailBatch", body, body.reason)
        application.fail_batch(batch_id, by, body.failed_at)

    @app.get("/v1/expected-units/{coi}", openapi_extra=declared("ListExpectedUnits"))
    def expected_units(coi: str, caller: ExpectedReader) -> Any:
        return [as_json(unit) for unit in application.expected_units(coi, Scope.of(caller))]

    @app.get("/v1/batches/{batch_id}", openapi_extra=declared("GetBatch"))
    def batch(batch_id: str, caller: BatchReader) -> Any:
        return as_json(application.batch(batch_id, Scope.of(caller)))

    @app.get(
        "/v1/units/{din}/label.pdf",
        response_class=Response,
        responses=PDF_RESPONSES,
        openapi_extra=PRODUCT_LABEL.openapi(),
    )
    def product_label(
        din: str,
        caller: LabelPrinter,
        product_code: IdText | None = None,
        expires_at: AwareDatetime | None = None,
    ) -> Response:
        """A product unit's ISBT 128 label (PDF, 100 x 100 mm): DIN with flags and check
        character, COI, the product code (one this site loaded: V2V_PRODUCT_CODES_FILE) and
        expiry when given, a Code 128 per data structure and a DataMatrix with all of them."""
        scope = Scope.of(caller)
        return pdf_response(application.product_label(din, scope, product_code, expires_at))

    return app
