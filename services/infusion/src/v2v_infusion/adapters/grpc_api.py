"""gRPC API (v2v.infusion.v1.InfusionService) over the application.

The caller's site and roles come from its client certificate (`current_caller()`), never
from request fields; domain refusals become status codes via `translate_errors` (a refused
bedside scan is FAILED_PRECONDITION, its reason code first in the details; a clinical time in
the future beyond the clock skew or out of sequence, e.g. a receipt before the product's
release, is INVALID_ARGUMENT naming the field). Reads are given the caller's `Scope`.

`ACCESS` declares each method's roles and relationship (`v2v_platform.access_policy`): every
write records for this treating site only (OWN_SITE: another site is PERMISSION_DENIED); a
product unit is read by this site for its own patients' units and the units it holds, and by
auditors (PATIENT: anyone else NOT_FOUND, as if absent); the alert list holds this site's
alerts for this site, every alert for an auditor, and nothing for another site (FILTERED).

The persons of the two-person checks are proven: each bedside scan carries the scanner's
re-authentication (`signature`, meaning "verification") and an infusion its witness's
(`witness_signature`, meaning "witness"), against this site's signer store (signer role
"nurse"). A failed re-authentication is UNAUTHENTICATED (counted towards the signer's lock-out),
a signer without the role PERMISSION_DENIED, a signer other than the person the request names
(operator, witnessed_by) INVALID_ARGUMENT; nothing is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from v2v.common.v1 import common_pb2
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v.infusion.v1 import infusion_service_pb2_grpc as pb_grpc
from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.views import AlertView, ProductUnitView
from v2v_platform.access_policy import Access, Relation, reads, required_roles, writes
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import Role, current_caller
from v2v_platform.esign import SignatureRequest
from v2v_platform.esign.persons import requested
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import (
    attribution,
    condition_to_proto,
    optional_time,
    signature_to_proto,
    timestamp,
)
from v2v_platform.scope import Scope

SERVICE_NAME = "v2v.infusion.v1.InfusionService"
ACCESS: dict[str, Access] = {
    "ReceiveProduct": writes(Relation.OWN_SITE, Role.INFUSION),
    "StoreProduct": writes(Relation.OWN_SITE, Role.INFUSION),
    "StartThaw": writes(Relation.OWN_SITE, Role.INFUSION),
    "ScanAtBedside": writes(Relation.OWN_SITE, Role.INFUSION),
    "AdministerInfusion": writes(Relation.OWN_SITE, Role.INFUSION),
    "RecordAdverseEvent": writes(Relation.OWN_SITE, Role.INFUSION),
    "AcknowledgeAlert": writes(Relation.OWN_SITE, Role.INFUSION),
    "ListAlerts": reads(Relation.FILTERED, Role.INFUSION, Role.AUDITOR),
    "GetProductUnit": reads(Relation.PATIENT, Role.INFUSION, Role.AUDITOR),
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)


def acting(method: str, operator: common_pb2.Operator) -> Attribution:
    roles = ACCESS[method].roles
    return attribution(current_caller(), roles, operator.user_id, operator.printed_name)


def proof(message: common_pb2.ESignatureRequest) -> SignatureRequest | None:
    """A person's re-authentication (None when the request carries none)."""
    return requested(message.user_id, message.password, message.meaning)


def optional_timestamp(moment: datetime | None) -> Any:
    return timestamp(moment) if moment is not None else None


def unit_message(view: ProductUnitView) -> pb.ProductUnit:
    return pb.ProductUnit(
        din=view.din,
        coi=view.coi,
        batch_id=view.batch_id,
        condition=condition_to_proto(view.condition),
        status=view.status,
        release_status=view.release_status,
        released_at=optional_timestamp(view.released_at),
        infuse_by=optional_timestamp(view.infuse_by),
        storage_location=view.storage_location,
        unacknowledged_failure_ids=view.unacknowledged_failure_ids,
        administered_at=optional_timestamp(view.administered_at),
        adverse_events=[
            pb.AdverseEvent(
                kind=e.kind, grade=e.grade, onset_at=timestamp(e.onset_at), notes=e.notes
            )
            for e in view.adverse_events
        ],
    )


def alert_message(view: AlertView) -> pb.Alert:
    return pb.Alert(
        failure_id=view.failure_id,
        coi=view.coi,
        batch_id=view.batch_id,
        product_dins=view.product_dins,
        test=view.test,
        value=view.value,
        criterion=view.criterion,
        result_at=timestamp(view.result_at),
        raised_at=timestamp(view.raised_at),
        acknowledged=view.acknowledged,
        decision=view.decision,
        physician_signature=signature_to_proto(view.physician_signature),
    )


class InfusionServicer(pb_grpc.InfusionServiceServicer):
    def __init__(self, app: InfusionApplication) -> None:
        self._app = app

    @translate_errors
    def ReceiveProduct(self, request: pb.ReceiveProductRequest, context: Any) -> Any:
        by = acting("ReceiveProduct", request.operator)
        received_at = optional_time(request, "received_at")
        view = self._app.receive_product(request.din, received_at, by)
        return pb.ReceiveProductResponse(unit=unit_message(view))

    @translate_errors
    def StoreProduct(self, request: pb.StoreProductRequest, context: Any) -> Any:
        by = acting("StoreProduct", request.operator)
        stored_at = optional_time(request, "stored_at")
        view = self._app.store_product(request.din, request.location, stored_at, by)
        return pb.StoreProductResponse(unit=unit_message(view))

    @translate_errors
    def StartThaw(self, request: pb.StartThawRequest, context: Any) -> Any:
        by = acting("StartThaw", request.operator)
        started_at = optional_time(request, "thaw_started_at")
        view = self._app.start_thaw(request.din, started_at, by)
        return pb.StartThawResponse(unit=unit_message(view))

    @translate_errors
    def ScanAtBedside(self, request: pb.ScanAtBedsideRequest, context: Any) -> Any:
        by = acting("ScanAtBedside", request.operator)
        scanned_at = optional_time(request, "scanned_at")
        signed = proof(request.signature)
        labels = request.wristband_coi, request.din
        scan = self._app.scan_at_bedside(*labels, scanned_at, signed, by)
        return pb.ScanAtBedsideResponse(outcome=scan.outcome, unit=unit_message(scan.unit))

    @translate_errors
    def AdministerInfusion(self, request: pb.AdministerInfusionRequest, context: Any) -> Any:
        by = acting("AdministerInfusion", request.operator)
        given = Administration(
            request.din,
            optional_time(request, "administered_at"),
            request.dose_car_cells_per_kg,
            request.volume_ml,
            request.witnessed_by.user_id,
            request.witnessed_by.printed_name,
            proof(request.witness_signature),
        )
        view = self._app.administer_infusion(given, by)
        return pb.AdministerInfusionResponse(unit=unit_message(view))

    @translate_errors
    def RecordAdverseEvent(self, request: pb.RecordAdverseEventRequest, context: Any) -> Any:
        by = acting("RecordAdverseEvent", request.operator)
        report = AdverseEventReport(
            request.din,
            request.kind,
            request.grade,
            optional_time(request, "onset_at"),
            request.notes,
        )
        view = self._app.record_adverse_event(report, by)
        return pb.RecordAdverseEventResponse(unit=unit_message(view))

    @translate_errors
    def ListAlerts(self, request: pb.ListAlertsRequest, context: Any) -> Any:
        alerts = self._app.list_alerts(Scope.of(current_caller()), request.unacknowledged_only)
        return pb.ListAlertsResponse(alerts=[alert_message(a) for a in alerts])

    @translate_errors
    def AcknowledgeAlert(self, request: pb.AcknowledgeAlertRequest, context: Any) -> Any:
        by = acting("AcknowledgeAlert", request.operator)
        given = request.signature
        signature = SignatureRequest(given.user_id, given.password, given.meaning)
        view = self._app.acknowledge_alert(request.failure_id, request.decision, signature, by)
        return pb.AcknowledgeAlertResponse(alert=alert_message(view))

    @translate_errors
    def GetProductUnit(self, request: pb.GetProductUnitRequest, context: Any) -> Any:
        view = self._app.product_unit(request.din, Scope.of(current_caller()))
        return pb.GetProductUnitResponse(unit=unit_message(view))


def register(app: InfusionApplication) -> Any:
    servicer = InfusionServicer(app)

    def add(server: Any) -> None:
        pb_grpc.add_InfusionServiceServicer_to_server(servicer, server)

    return add
