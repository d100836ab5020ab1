"""HTTP API (FastAPI) over the same application as gRPC; OpenAPI at /openapi.json.

Sites authenticate with consortium-signed bearer tokens; the caller's site comes from the
token, never from the body; the persons of a bedside scan and an infusion's witness
re-authenticate in the body (a failed re-authentication: 401). Refusals are problem+json
documents with a 4xx status; a step refused by a safety rule (scan, storage, thaw, infusion:
409) carries its `reason_code`; a clinical time in the future beyond the clock skew or out of
sequence (e.g. a receipt before the product's release) is 422 naming the field. Every route
declares its gRPC twin's access (`grpc_api.ACCESS`: roles and relationship) in its OpenAPI
operation (`x-v2v-access`) and requires those roles. (No `from __future__ import annotations`
here: FastAPI resolves the dependencies below.)
"""

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from v2v_infusion.adapters.grpc_api import ACCESS
from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.values import SafetyRefused
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.esign import SignatureRequest
from v2v_platform.esign.persons import requested
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


class ESignature(BaseModel):
    user_id: IdText
    password: Password
    meaning: IdText

    def request(self) -> SignatureRequest | None:
        password = self.password.get_secret_value()
        return requested(self.user_id, password, self.meaning)


class BedsideScan(Command):
    """Labels as scanned: a refusal records and repeats at most 256 characters of each.
    `signature`: the scanning person's re-authentication (meaning "verification"); the
    operator must be that person."""

    wristband_coi: str
    din: str
    scanned_at: datetime | None = None
    signature: ESignature


class Infusion(Command):
    """`witness_signature`: the witness's re-authentication (meaning "witness"); the witness
    must be that person."""

    dose_car_cells_per_kg: Finite
    volume_ml: Finite
    witnessed_by: Operator
    administered_at: datetime | None = None
    witness_signature: ESignature


class AdverseEvent(Command):
    kind: IdText
    grade: int
    onset_at: datetime | None = None
    notes: FreeText = ""


class Acknowledgement(Command):
    decision: FreeText
    signature: ESignature


def safety_refusal(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SafetyRefused)
    return problem(409, SAFETY_REFUSAL, str(error), "refused", reason_code=error.reason_code)


def create_http_app(application: InfusionApplication, verifier: SiteTokenVerifier) -> FastAPI:
    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *ACCESS[method].roles)

    Receiver = Annotated[CallerIdentity, Depends(caller_for("ReceiveProduct"))]
    Storer = Annotated[CallerIdentity, Depends(caller_for("StoreProduct"))]
    Thawer = Annotated[CallerIdentity, Depends(caller_for("StartThaw"))]
    Scanner = Annotated[CallerIdentity, Depends(caller_for("ScanAtBedside"))]
    Administrator = Annotated[CallerIdentity, Depends(caller_for("AdministerInfusion"))]
    Reporter = Annotated[CallerIdentity, Depends(caller_for("RecordAdverseEvent"))]
    Physician = Annotated[CallerIdentity, Depends(caller_for("AcknowledgeAlert"))]
    UnitReader = Annotated[CallerIdentity, Depends(caller_for("GetProductUnit"))]
    AlertReader = Annotated[CallerIdentity, Depends(caller_for("ListAlerts"))]

    def declared(method: str) -> dict[str, Any]:
        return ACCESS[method].openapi()

    def acting(caller: CallerIdentity, method: str, body: Command) -> Attribution:
        operator = body.operator
        roles = ACCESS[method].roles
        return attribution(caller, roles, operator.user_id, operator.printed_name)

    app = create_app(
        "v2v infusion",
        "1",
        "Receipt, storage, thaw, two-person bedside verification, infusion, adverse events and"
        " post-release failure alerts at a treating site.",
    )
    app.add_exception_handler(SafetyRefused, safety_refusal)

    @app.post("/v1/units/{din}/receipt", status_code=201, openapi_extra=declared("ReceiveProduct"))
    def receive(din: str, body: Receive, caller: Receiver) -> Any:
        by = acting(caller, "ReceiveProduct", body)
        return asdict(application.receive_product(din, body.received_at, by))

    @app.post("/v1/units/{din}/storage", openapi_extra=declared("StoreProduct"))
    def store(din: str, body: Store, caller: Storer) -> Any:
        by = acting(caller, "StoreProduct", body)
        return asdict(application.store_product(din, body.location, body.stored_at, by))

    @app.post("/v1/units/{din}/thaw", openapi_extra=declared("StartThaw"))
    def thaw(din: str, body: Thaw, caller: Thawer) -> Any:
        by = acting(caller, "StartThaw", body)
        return asdict(application.start_thaw(din, body.thaw_started_at, by))

    @app.post("/v1/bedside-scans", openapi_extra=declared("ScanAtBedside"))
    def scan(body: BedsideScan, caller: Scanner) -> Any:
        by = acting(caller, "ScanAtBedside", body)
        proof = body.signature.request()
        labels = body.wristband_coi, body.din
        view = application.scan_at_bedside(*labels, body.scanned_at, proof, by)
        return asdict(view)

    @app.post(
        "/v1/units/{din}/infusion", status_code=201, openapi_extra=declared("AdministerInfusion")
    )
    def infuse(din: str, body: Infusion, caller: Administrator) -> Any:
        witness = body.witnessed_by
        given = Administration(
            din,
            body.administered_at,
            body.dose_car_cells_per_kg,
            body.volume_ml,
            witness.user_id,
            witness.printed_name,
            body.witness_signature.request(),
        )
        by = acting(caller, "AdministerInfusion", body)
        return asdict(application.administer_infusion(given, by))

    @app.post(
        "/v1/units/{din}/adverse-events",
        status_code=201,
        openapi_extra=declared("RecordAdverseEvent"),
    )
    def adverse_event(din: str, body: AdverseEvent, caller: Reporter) -> Any:
        report = AdverseEventReport(din, body.kind, body.grade, body.onset_at, body.notes)
        by = acting(caller, "RecordAdverseEvent", body)
        return asdict(application.record_adverse_event(report, by))

    @app.get("/v1/units/{din}", openapi_extra=declared("GetProductUnit"))
    def unit(din: str, caller: UnitReader) -> Any:
        return asdict(application.product_unit(din, Scope.of(caller)))

    @app.get("/v1/alerts", openapi_extra=declared("ListAlerts"))
    def alerts(caller: AlertReader, unacknowledged_only: bool = False) -> Any:
        alerts = application.list_alerts(Scope.of(caller), unacknowledged_only)
        return {"alerts": [asdict(a) for a in alerts]}

    @app.post(
        "/v1/alerts/{failure_id}/acknowledgement",
        status_code=201,
        openapi_extra=declared("AcknowledgeAlert"),
    )
    def acknowledge(failure_id: str, body: Acknowledgement, caller: Physician) -> Any:
        given = body.signature
        password = given.password.get_secret_value()
        signature = SignatureRequest(given.user_id, password, given.meaning)
        by = acting(caller, "AcknowledgeAlert", body)
        return asdict(application.acknowledge_alert(failure_id, body.decision, signature, by))

    return app
