"""HTTP API (FastAPI) over the same application as gRPC; OpenAPI at /openapi.json.

Sites authenticate with consortium-signed bearer tokens; the caller's site comes from the
token, never from the body. Each result and decision may carry its clinical time (`result_at`,
`certified_at`, `rejected_at`, `justified_at`, `accepted_at`; a decision's is optional, default
now); a time in the future beyond the clock skew or out of sequence is 422 naming the field.
Refusals are problem+json documents with a 4xx status (a failed re-authentication is 401, a
signer without the signing role 403). Every route declares the
`Access` of its gRPC twin (`x-v2v-access` in its OpenAPI operation) and checks the same roles.
(No `from __future__ import annotations` here: FastAPI resolves the dependencies below.)
"""

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import AwareDatetime, BaseModel

from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity
from v2v_platform.esign import SignatureRequest
from v2v_platform.http_api import (
    FreeText,
    IdText,
    NameText,
    Password,
    SiteTokenVerifier,
    create_app,
    require_roles,
)
from v2v_platform.proto_values import attribution
from v2v_release.adapters.grpc_api import ACCESS, acting_roles, reader
from v2v_release.application import ReleaseApplication
from v2v_release.domain.specification import ReleaseSpecification
from v2v_release.domain.values import Analyst, Correction, QcReport


class Operator(BaseModel):
    user_id: IdText
    printed_name: NameText


class Command(BaseModel):
    operator: Operator


class RecordQcResult(Command):
    test: IdText
    method: NameText = ""
    value: IdText
    unit: IdText = ""
    result_at: AwareDatetime
    analyst: Operator
    corrects_result_id: IdText = ""
    correction_reason: FreeText = ""


class ESignature(BaseModel):
    user_id: IdText
    password: Password
    meaning: IdText


class SignedCommand(Command):
    signature: ESignature


class Certification(SignedCommand):
    certified_at: AwareDatetime | None = None
    """When the QP certified (clinical time; absent: now)."""


class Rejection(SignedCommand):
    reason: FreeText
    rejected_at: AwareDatetime | None = None
    """When the QP rejected the batch (clinical time; absent: now)."""


class OosJustification(SignedCommand):
    justification: FreeText
    justified_at: AwareDatetime | None = None
    """When the QP justified the release (clinical time; absent: now)."""


class OosAcceptance(SignedCommand):
    accepted_at: AwareDatetime | None = None
    """When the treating physician accepted (clinical time; absent: now)."""


def qc_report(body: RecordQcResult) -> QcReport:
    analyst = Analyst(body.analyst.user_id, body.analyst.printed_name)
    return QcReport(body.test, body.method, body.value, body.unit, body.result_at, analyst)


def correction(body: RecordQcResult) -> Correction | None:
    if not body.corrects_result_id and not body.correction_reason:
        return None
    return Correction(body.corrects_result_id, body.correction_reason)


def signature_request(body: SignedCommand) -> SignatureRequest:
    given = body.signature
    return SignatureRequest(given.user_id, given.password.get_secret_value(), given.meaning)


def specification_json(spec: ReleaseSpecification) -> dict[str, Any]:
    return {
        "version": spec.version,
        "effective_from": spec.effective_from.isoformat(),
        "criteria": [
            {
                "test": c.test,
                "criterion": c.text,
                "phase": c.phase.value,
                "unit": c.unit,
                "method": c.method,
            }
            for c in spec.criteria
        ],
    }


def create_http_app(application: ReleaseApplication, verifier: SiteTokenVerifier) -> FastAPI:
    def caller_for(method: str) -> Any:
        return require_roles(lambda: verifier, *ACCESS[method].roles)

    def declared(method: str) -> dict[str, Any]:
        return ACCESS[method].openapi()

    ResultCaller = Annotated[CallerIdentity, Depends(caller_for("RecordQcResult"))]
    ProvisionalCaller = Annotated[CallerIdentity, Depends(caller_for("CertifyProvisionally"))]
    FinalCaller = Annotated[CallerIdentity, Depends(caller_for("CertifyFinally"))]
    RejectCaller = Annotated[CallerIdentity, Depends(caller_for("RejectBatch"))]
    JustifyCaller = Annotated[CallerIdentity, Depends(caller_for("JustifyOosRelease"))]
    PhysicianCaller = Annotated[CallerIdentity, Depends(caller_for("AcceptOosRelease"))]
    ReleaseReader = Annotated[CallerIdentity, Depends(caller_for("GetBatchRelease"))]
    SpecReader = Annotated[CallerIdentity, Depends(caller_for("ListSpecifications"))]

    def acting(caller: CallerIdentity, method: str, body: Command) -> Attribution:
        operator = body.operator
        return attribution(caller, acting_roles(method), operator.user_id, operator.printed_name)

    app = create_app(
        "v2v release",
        "1",
        "QC results against versioned specifications; e-signed provisional and final"
        " certification, rejection and OOS exceptional release.",
    )

    @app.post(
        "/v1/batches/{batch_id}/qc-results",
        status_code=201,
        openapi_extra=declared("RecordQcResult"),
    )
    def record_qc_result(batch_id: str, body: RecordQcResult, caller: ResultCaller) -> Any:
        by = acting(caller, "RecordQcResult", body)
        view = application.record_qc_result(batch_id, qc_report(body), correction(body), by)
        return asdict(view)

    @app.post(
        "/v1/batches/{batch_id}/provisional-certification",
        status_code=201,
        openapi_extra=declared("CertifyProvisionally"),
    )
    def certify_provisionally(batch_id: str, body: Certification, caller: ProvisionalCaller) -> Any:
        by = acting(caller, "CertifyProvisionally", body)
        signature = signature_request(body)
        view = application.certify_provisionally(batch_id, signature, by, body.certified_at)
        return asdict(view)

    @app.post(
        "/v1/batches/{batch_id}/final-certification",
        status_code=201,
        openapi_extra=declared("CertifyFinally"),
    )
    def certify_finally(batch_id: str, body: Certification, caller: FinalCaller) -> Any:
        by = acting(caller, "CertifyFinally", body)
        signature = signature_request(body)
        return asdict(application.certify_finally(batch_id, signature, by, body.certified_at))

    @app.post(
        "/v1/batches/{batch_id}/rejection", status_code=201, openapi_extra=declared("RejectBatch")
    )
    def reject(batch_id: str, body: Rejection, caller: RejectCaller) -> Any:
        by = acting(caller, "RejectBatch", body)
        signature = signature_request(body)
        view = application.reject(batch_id, body.reason, signature, by, body.rejected_at)
        return asdict(view)

    @app.post(
        "/v1/batches/{batch_id}/oos-justification",
        status_code=201,
        openapi_extra=declared("JustifyOosRelease"),
    )
    def justify_oos(batch_id: str, body: OosJustification, caller: JustifyCaller) -> Any:
        by = acting(caller, "JustifyOosRelease", body)
        signature = signature_request(body)
        justification, at = body.justification, body.justified_at
        view = application.justify_oos_release(batch_id, justification, signature, by, at)
        return asdict(view)

    @app.post(
        "/v1/batches/{batch_id}/oos-acceptance",
        status_code=201,
        openapi_extra=declared("AcceptOosRelease"),
    )
    def accept_oos(batch_id: str, body: OosAcceptance, caller: PhysicianCaller) -> Any:
        by = acting(caller, "AcceptOosRelease", body)
        signature = signature_request(body)
        return asdict(application.accept_oos_release(batch_id, signature, by, body.accepted_at))

    @app.get("/v1/batches/{batch_id}", openapi_extra=declared("GetBatchRelease"))
    def batch_release(batch_id: str, caller: ReleaseReader) -> Any:
        return asdict(application.batch_release(batch_id, reader(caller)))

    @app.get("/v1/specifications", openapi_extra=declared("ListSpecifications"))
    def specifications(caller: SpecReader) -> Any:
        return [specification_json(s) for s in application.list_specifications()]

    return app
