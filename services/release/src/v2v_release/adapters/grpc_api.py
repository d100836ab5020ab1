"""gRPC API (v2v.release.v1.ReleaseService) over the application.

The caller's site and roles come from its client certificate (`current_caller()`), never
from request fields; domain refusals become status codes via `translate_errors` (a failed
re-authentication is UNAUTHENTICATED, a signer without the signing role PERMISSION_DENIED).
`ACCESS` declares, per method, the roles it needs and the relationship to the records it
touches (`v2v_platform.access_policy`); the HTTP routes declare the same.
"""

from __future__ import annotations

from typing import Any

from v2v.common.v1 import common_pb2
from v2v.release.v1 import release_service_pb2 as pb
from v2v.release.v1 import release_service_pb2_grpc as pb_grpc
from v2v_platform.access_policy import Access, Relation, reads, required_roles, writes
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import CallerIdentity, Role, current_caller
from v2v_platform.esign import SignatureRequest
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import (
    attribution,
    condition_to_proto,
    optional_time,
    required_time,
    signature_to_proto,
    timestamp,
)
from v2v_platform.scope import Scope
from v2v_release.application import ReleaseApplication
from v2v_release.domain.specification import ReleaseSpecification
from v2v_release.domain.values import Analyst, Correction, QcReport
from v2v_release.views import BatchReleaseView

SERVICE_NAME = "v2v.release.v1.ReleaseService"
QC_WORK = writes(Relation.OWN_SITE, Role.QC)
ACCESS: dict[str, Access] = {
    # this QC site's own results and QP decisions (another site: PERMISSION_DENIED)
    "RecordQcResult": QC_WORK,
    "CertifyProvisionally": QC_WORK,
    "CertifyFinally": QC_WORK,
    "RejectBatch": QC_WORK,
    "JustifyOosRelease": QC_WORK,
    # the COI's treating site (from intake's PatientEnrolled) only; anyone else: NOT_FOUND
    "AcceptOosRelease": writes(Relation.PATIENT, Role.INFUSION),
    # this QC site, the batch's manufacturing site, the COI's treating site, auditors
    "GetBatchRelease": reads(Relation.PATIENT, Role.QC, Role.INFUSION, Role.AUDITOR),
    "ListSpecifications": reads(Relation.NO_PATIENT_DATA, Role.QC, Role.AUDITOR),
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)


def acting_roles(method: str) -> list[Role]:
    """The method's roles in a fixed order: a caller holding several acts in the first."""
    return sorted(ACCESS[method].roles)


def acting(method: str, operator: common_pb2.Operator) -> Attribution:
    return attribution(
        current_caller(), acting_roles(method), operator.user_id, operator.printed_name
    )


def reader(caller: CallerIdentity) -> Scope:
    """The caller as a reader: its own site's records (as the application relates them to
    sites), everything for auditors."""
    return Scope.of(caller)


def signature_request(message: common_pb2.ESignatureRequest) -> SignatureRequest:
    return SignatureRequest(message.user_id, message.password, message.meaning)


def qc_report(request: pb.RecordQcResultRequest) -> QcReport:
    analyst = Analyst(request.analyst.user_id, request.analyst.printed_name)
    return QcReport(
        request.test,
        request.method,
        request.value,
        request.unit,
        required_time(request, "result_at"),
        analyst,
    )


def correction(request: pb.RecordQcResultRequest) -> Correction | None:
    if not request.corrects_result_id and not request.correction_reason:
        return None
    return Correction(request.corrects_result_id, request.correction_reason)


def release_message(view: BatchReleaseView) -> pb.BatchRelease:
    condition = (
        condition_to_proto(view.condition)
        if view.condition
        else common_pb2.Condition.CONDITION_UNSPECIFIED
    )
    return pb.BatchRelease(
        batch_id=view.batch_id,
        coi=view.coi,
        manufacturing_site_id=view.manufacturing_site_id,
        product_dins=view.product_dins,
        condition=condition,
        spec_version=view.spec_version,
        status=view.status,
        results=[
            pb.QcResult(
                result_id=r.result_id,
                test=r.test,
                method=r.method,
                value=r.value,
                unit=r.unit,
                result_at=timestamp(r.result_at),
                analyst=common_pb2.Operator(**r.analyst),
                passed=r.passed,
                criterion=r.criterion,
                corrected_by_result_id=r.corrected_by_result_id,
            )
            for r in view.results
        ],
        pending_tests=view.pending_tests,
        failed_tests=view.failed_tests,
        decisions=[
            pb.Decision(
                decision=d.decision,
                decided_at=timestamp(d.decided_at),
                reason=d.reason,
                signature=signature_to_proto(d.signature),
            )
            for d in view.decisions
        ],
        post_release_failure_ids=view.post_release_failure_ids,
    )


def specification_message(spec: ReleaseSpecification) -> pb.Specification:
    return pb.Specification(
        version=spec.version,
        effective_from=timestamp(spec.effective_from),
        criteria=[
            pb.Criterion(
                test=c.test, criterion=c.text, phase=c.phase.value, unit=c.unit, method=c.method
            )
            for c in spec.criteria
        ],
    )


class ReleaseServicer(pb_grpc.ReleaseServiceServicer):
    def __init__(self, app: ReleaseApplication) -> None:
        self._app = app

    @translate_errors
    def RecordQcResult(self, request: pb.RecordQcResultRequest, context: Any) -> Any:
        by = acting("RecordQcResult", request.operator)
        view = self._app.record_qc_result(
            request.batch_id, qc_report(request), correction(request), by
        )
        return pb.RecordQcResultResponse(
            result_id=view.result_id,
            passed=view.passed,
            criterion=view.criterion,
            pending_tests=view.pending_tests,
            post_release_failure_id=view.post_release_failure_id,
        )

    @translate_errors
    def CertifyProvisionally(self, request: pb.CertifyProvisionallyRequest, context: Any) -> Any:
        by = acting("CertifyProvisionally", request.operator)
        signature = signature_request(request.signature)
        at = optional_time(request, "certified_at")
        view = self._app.certify_provisionally(request.batch_id, signature, by, at)
        return pb.CertifyProvisionallyResponse(release=release_message(view))

    @translate_errors
    def CertifyFinally(self, request: pb.CertifyFinallyRequest, context: Any) -> Any:
        by = acting("CertifyFinally", request.operator)
        signature = signature_request(request.signature)
        at = optional_time(request, "certified_at")
        view = self._app.certify_finally(request.batch_id, signature, by, at)
        return pb.CertifyFinallyResponse(release=release_message(view))

    @translate_errors
    def RejectBatch(self, request: pb.RejectBatchRequest, context: Any) -> Any:
        by = acting("RejectBatch", request.operator)
        signature = signature_request(request.signature)
        at = optional_time(request, "rejected_at")
        view = self._app.reject(request.batch_id, request.reason, signature, by, at)
        return pb.RejectBatchResponse(release=release_message(view))

    @translate_errors
    def JustifyOosRelease(self, request: pb.JustifyOosReleaseRequest, context: Any) -> Any:
        by = acting("JustifyOosRelease", request.operator)
        signature = signature_request(request.signature)
        at = optional_time(request, "justified_at")
        justification = request.justification
        view = self._app.justify_oos_release(request.batch_id, justification, signature, by, at)
        return pb.JustifyOosReleaseResponse(release=release_message(view))

    @translate_errors
    def AcceptOosRelease(self, request: pb.AcceptOosReleaseRequest, context: Any) -> Any:
        by = acting("AcceptOosRelease", request.operator)
        signature = signature_request(request.signature)
        at = optional_time(request, "accepted_at")
        view = self._app.accept_oos_release(request.batch_id, signature, by, at)
        return pb.AcceptOosReleaseResponse(release=release_message(view))

    @translate_errors
    def GetBatchRelease(self, request: pb.GetBatchReleaseRequest, context: Any) -> Any:
        view = self._app.batch_release(request.batch_id, reader(current_caller()))
        return pb.GetBatchReleaseResponse(release=release_message(view))

    @translate_errors
    def ListSpecifications(self, request: pb.ListSpecificationsRequest, context: Any) -> Any:
        specifications = self._app.list_specifications()
        return pb.ListSpecificationsResponse(
            specifications=[specification_message(s) for s in specifications]
        )


def register(app: ReleaseApplication) -> Any:
    servicer = ReleaseServicer(app)

    def add(server: Any) -> None:
        pb_grpc.add_ReleaseServiceServicer_to_server(servicer, server)

    return add
