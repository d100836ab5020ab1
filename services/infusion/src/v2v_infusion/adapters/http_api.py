"""HTTP API (FastAPI) over the same application as gRPC; OpenAPI at /openapi.json.

Sites authenticate with consortium-signed bearer tokens; the caller's site comes from the
token, never from the body. Refusals are problem+json documents with a 4xx status; a refused
scan or infusion (409) carries its `reason_code`. (No `from __future__ import annotations`
here: FastAPI resolves the dependencies below.)
"""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from v2v_infusion.adapters.grpc_api import ROLES
from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.values import InfusionRefused, ScanRefused
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.esign import SignatureRequest
from v2v_platform.http_api import (
    Finite,
    FreeText,
    IdText,
    NameText,
    Password,
    SiteTokenVerifier,
    create_app,
    problem,
    require_roles,
)
from v2v_platform.proto_values import attribution
from v2v_platform.scope import Scope

SAFETY_REFUSAL = "Refused by a safety rule"


class Operator(BaseModel):
    user_id: IdText
    printed_name: NameText


class Command(BaseModel):
    operator: Operator


class Receive(Command):
    received_at: datetime | None = None


class Store(Command):
    location: NameText
    stored_at: datetime | None = None


class Thaw(Command):
    thaw_started_at: datetime | None = None


class BedsideScan(Command):
    """Labels as scanned: a refusal records and repeats at most 256 characters of each."""

    wristband_coi: str
    din: str
    scanned_at: datetime | None = None


class Infusion(Command):
    dose_car_cells_per_kg: Finite
    volume_ml: Finite
    witnessed_by: Operator
    administered_at: datetime | None = None


class AdverseEvent(Command):
    kind: IdText
    grade: int
    onset_at: datetime | None = None
    notes: FreeText = ""


class ESignature(BaseModel):
    user_id: IdText
    password: Password
    meaning: IdText


class Acknowledgement(Command):
    decision: FreeText
    signature: ESignature


def safety_refusal(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ScanRefused | InfusionRefused)
    return problem(409, SAFETY_REFUSAL, str(error), "refused", reason_code=error.reason_code)


def create_http_app(application: InfusionApplication, verifier: SiteTokenVerifier) -> FastAPI:
    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *ROLES[method])

    Nurse = Annotated[CallerIdentity, Depends(caller_for("ScanAtBedside"))]
    Reader = Annotated[CallerIdentity, Depends(caller_for("GetProductUnit"))]

    def acting(caller: CallerIdentity, method: str, body: Command) -> Attribution:
        operator = body.operator
        return attribution(caller, ROLES[method], operator.user_id, operator.printed_name)

    app = create_app(
        "v2v infusion",
        "1",
        "Receipt, storage, thaw, two-person bedside verification, infusion, adverse events and"
        " post-release failure alerts at a treating site.",
    )
    app.add_exception_handler(ScanRefused, safety_refusal)
    app.add_exception_handler(InfusionRefused, safety_refusal)

    @app.post("/v1/units/{din}/receipt", status_code=201)
    def receive(din: str, body: Receive, caller: Nurse) -> Any:
        by = acting(caller, "ReceiveProduct", body)
        return asdict(application.receive_product(din, body.received_at, by))

    @app.post("/v1/units/{din}/storage")
    def store(din: str, body: Store, caller: Nurse) -> Any:
        by = acting(caller, "StoreProduct", body)
        return asdict(application.store_product(din, body.location, body.stored_at, by))

    @app.post("/v1/units/{din}/thaw")
    def thaw(din: str, body: Thaw, caller: Nurse) -> Any:
        by = acting(caller, "StartThaw", body)
        return asdict(application.start_thaw(din, body.thaw_started_at, by))

    @app.post("/v1/bedside-scans")
    def scan(body: BedsideScan, caller: Nurse) -> Any:
        by = acting(caller, "ScanAtBedside", body)
        view = application.scan_at_bedside(body.wristband_coi, body.din, body.scanned_at, by)
        return asdict(view)

    @app.post("/v1/units/{din}/infusion", status_code=201)
    def infuse(din: str, body: Infusion, caller: Nurse) -> Any:
        witness = body.witnessed_by
        given = Administration(
            din,
            body.administered_at,
            body.dose_car_cells_per_kg,
            body.volume_ml,
            witness.user_id,
            witness.printed_name,
        )
        by = acting(caller, "AdministerInfusion", body)
        return asdict(application.administer_infusion(given, by))

    @app.post("/v1/units/{din}/adverse-events", status_code=201)
    def adverse_event(din: str, body: AdverseEvent, caller: Nurse) -> Any:
        report = AdverseEventReport(din, body.kind, body.grade, body.onset_at, body.notes)
        by = acting(caller, "RecordAdverseEvent", body)
        return asdict(application.record_adverse_event(report, by))

    @app.get("/v1/units/{din}")
    def unit(din: str, caller: Reader) -> Any:
        return asdict(application.product_unit(din, Scope.of(caller)))

    @app.get("/v1/alerts")
    def alerts(caller: Reader, unacknowledged_only: bool = False) -> Any:
        alerts = application.list_alerts(Scope.of(caller), unacknowledged_only)
        return {"alerts": [asdict(a) for a in alerts]}

    @app.post("/v1/alerts/{failure_id}/acknowledgement", status_code=201)
    def acknowledge(failure_id: str, body: Acknowledgement, caller: Nurse) -> Any:
        given = body.signature
        password = given.password.get_secret_value()
        signature = SignatureRequest(given.user_id, password, given.meaning)
        by = acting(caller, "AcknowledgeAlert", body)
        return asdict(application.acknowledge_alert(failure_id, body.decision, signature, by))

    return app
