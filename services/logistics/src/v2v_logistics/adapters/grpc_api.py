"""gRPC API (v2v.logistics.v1.LogisticsService) over the application.

The caller's site and roles come from its client certificate (`current_caller()`), never
from request fields; domain refusals become status codes via `translate_errors`, custody
refusals FAILED_PRECONDITION with "<reason-code>: <explanation>". Every method declares its
`Access` (roles and relation) in `ACCESS`: the shipment's parties only (origin, destination,
the site holding it, in the courier role the assigned courier's company); to anyone else a
shipment is NOT_FOUND, as if absent; auditors read every shipment. A request's `department`
names the calling site's department it acts for (`site:<ID>/<department>`): the caller acts in
the role that department stands for, which its certificate must hold (PERMISSION_DENIED
otherwise).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from v2v.common.v1 import common_pb2
from v2v.logistics.v1 import logistics_service_pb2 as pb
from v2v.logistics.v1 import logistics_service_pb2_grpc as pb_grpc
from v2v_logistics.application import LogisticsApplication, NewShipment, ScanRefusedAtCreation
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.values import (
    Department,
    ExceptionKind,
    Reading,
    ScanAttempt,
    parse_department,
    parse_enum,
)
from v2v_logistics.views import ExcursionView, ShipmentView
from v2v_platform import access_log
from v2v_platform.access_policy import Access, Relation, reads, required_roles, writes
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.auth.identity import CallerIdentity, Role, current_caller
from v2v_platform.errors import Forbidden, Refused
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import (
    attribution,
    condition_from_proto,
    condition_to_proto,
    optional_time,
    required_time,
    signature_from_proto,
    timestamp,
)
from v2v_platform.scope import Scope

SERVICE_NAME = "v2v.logistics.v1.LogisticsService"
SHIPPERS = (Role.COLLECTION, Role.MANUFACTURING)
SITES = (Role.COLLECTION, Role.MANUFACTURING, Role.INFUSION)
CARRIERS = (*SITES, Role.COURIER)
ACCESS: dict[str, Access] = {
    # The origin is the caller; the units must be ones verified facts relate to it (any
    # other unit is answered exactly like a unit nobody knows: NOT_FOUND "unknown-unit").
    "CreateShipment": writes(Relation.PATIENT, *SHIPPERS),
    "AssignCourier": writes(Relation.SHIPMENT, *SITES),
    "OfferHandoff": writes(Relation.SHIPMENT, *CARRIERS),
    "RecordScan": writes(Relation.SHIPMENT, *CARRIERS),
    "ConfirmHandoff": writes(Relation.SHIPMENT, *CARRIERS),
    "ReceiveShipment": writes(Relation.SHIPMENT, *SITES),
    "InspectReceipt": writes(Relation.SHIPMENT, *SITES),
    "RecordException": writes(Relation.SHIPMENT, *SITES),
    "UploadTemperatureReadings": writes(Relation.SHIPMENT, *CARRIERS),
    "GetShipment": reads(Relation.SHIPMENT, *CARRIERS, Role.AUDITOR),
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)


def roles_of(method: str) -> list[Role]:
    """The method's roles in a fixed order (the first the caller holds is its acting role)."""
    return sorted(ACCESS[method].roles)


class CustodyRefused(Refused):
    """A `ScanRefused` as gRPC callers see it: the reason code leads the details."""


def coded(error: ScanRefused | ScanRefusedAtCreation) -> CustodyRefused:
    return CustodyRefused(f"{error.reason_code}: {error}")


def acting(
    method: str, operator: common_pb2.Operator, reason: str = "", department: str = ""
) -> Attribution:
    return acting_for(
        current_caller(), method, operator.user_id, operator.printed_name, reason, department
    )


def acting_for(
    caller: CallerIdentity,
    method: str,
    user_id: str,
    printed_name: str,
    reason: str = "",
    department: str = "",
) -> Attribution:
    """Who acts: in the first of the method's roles the caller holds or, for one of its
    departments, in the role that department stands for (Forbidden when the caller's
    credentials do not hold it)."""
    if not department:
        return attribution(caller, roles_of(method), user_id, printed_name, reason)
    role = Department(parse_department(department)).role
    if role not in caller.roles:
        raise Forbidden(
            f"site {caller.site_id} does not hold the {role.value} role its {department}"
            " department acts in"
        )
    return attribution(caller, [role], user_id, printed_name, reason)


def excursion_message(view: ExcursionView) -> pb.Excursion:
    return pb.Excursion(
        device_id=view.device_id,
        started_at=timestamp(view.started_at),
        ended_at=timestamp(view.ended_at),
        duration_seconds=int(view.duration_seconds),
        min_c=view.min_c,
        max_c=view.max_c,
    )


def shipment_message(view: ShipmentView) -> pb.Shipment:
    return pb.Shipment(
        shipment_id=view.shipment_id,
        coi=view.coi,
        status=view.status,
        condition=condition_to_proto(view.condition),
        origin_site_id=view.origin_site_id,
        destination_site_id=view.destination_site_id,
        custodian=view.custodian,
        manifest_dins=view.manifest,
        shipper_id=view.shipper_id,
        data_logger_id=view.data_logger_id,
        assigned_courier_id=view.assigned_courier_id,
        window_ends_at=timestamp(view.window_ends_at) if view.window_ends_at else None,
        window_breached=view.window_breached,
        excursions=[excursion_message(e) for e in view.excursions],
        exception_kind=view.exception_kind,
        offered_to=view.offered_to,
        origin_party=view.origin_party,
        destination_party=view.destination_party,
        created_at=timestamp(view.created_at) if view.created_at else None,
        received_at=timestamp(view.received_at) if view.received_at else None,
    )


def override_from(request: pb.ReceiveShipmentRequest) -> WindowOverride | None:
    if not request.HasField("window_override"):
        return None
    given = request.window_override
    return WindowOverride(given.reason, signature_from_proto(given.signature))


def custody_rule(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (ScanRefused, ScanRefusedAtCreation) as error:
        raise coded(error) from None


Handler = TypeVar("Handler", bound=Callable[..., Any])


def logs_shipment_coi(handler: Handler) -> Handler:
    """The access log names the COI of the shipment a call touched, allowed or refused (the
    requests name a shipment id, not a COI; the log is the auditor's, never the caller's)."""

    @functools.wraps(handler)
    def logged(servicer: LogisticsServicer, request: Any, context: Any) -> Any:
        try:
            return handler(servicer, request, context)
        finally:
            access_log.note_coi(servicer.app.shipment_coi(request.shipment_id))

    return logged  # type: ignore[return-value]


class LogisticsServicer(pb_grpc.LogisticsServiceServicer):
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    @translate_errors
    def CreateShipment(
        self, request: pb.CreateShipmentRequest, context: Any
    ) -> pb.CreateShipmentResponse:
        plan = NewShipment(
            list(request.manifest_dins),
            condition_from_proto(request.condition),
            request.destination_site_id,
            request.shipper_id,
            request.data_logger_id,
            request.courier_id,
            request.department,
            request.destination_department,
            optional_time(request, "created_at"),
        )
        by = acting("CreateShipment", request.operator, department=request.department)
        view = custody_rule(lambda: self.app.create_shipment(plan, by))
        return pb.CreateShipmentResponse(shipment=shipment_message(view))

    @translate_errors
    @logs_shipment_coi
    def AssignCourier(
        self, request: pb.AssignCourierRequest, context: Any
    ) -> pb.AssignCourierResponse:
        by = acting("AssignCourier", request.operator, department=request.department)
        view = self.app.assign_courier(
            request.shipment_id, request.courier_id, by, request.department
        )
        return pb.AssignCourierResponse(shipment=shipment_message(view))

    @translate_errors
    @logs_shipment_coi
    def OfferHandoff(
        self, request: pb.OfferHandoffRequest, context: Any
    ) -> pb.OfferHandoffResponse:
        by = acting("OfferHandoff", request.operator, department=request.department)
        offer = ScanAttempt(
            request.idempotency_key,
            required_time(request, "offered_at"),
            self.app.acting_party(by, request.department),
            request.to_party,
        )
        outcome = custody_rule(
            lambda: self.app.offer_handoff(request.shipment_id, offer, by, "offered_at")
        )
        return pb.OfferHandoffResponse(
            custodian=outcome.custodian, offered_to=outcome.offered_to, status=outcome.status
        )

    @translate_errors
    @logs_shipment_coi
    def RecordScan(self, request: pb.RecordScanRequest, context: Any) -> pb.RecordScanResponse:
        by = acting("RecordScan", request.operator, department=request.department)
        scan = ScanAttempt(
            request.idempotency_key,
            required_time(request, "scanned_at"),
            request.from_party,
            self.app.acting_party(by, request.department),
            request.label,
        )
        outcome = custody_rule(lambda: self.app.scan(request.shipment_id, scan, by))
        return pb.RecordScanResponse(
            din=outcome.din, remaining_dins=outcome.remaining, late=outcome.late
        )

    @translate_errors
    @logs_shipment_coi
    def ConfirmHandoff(
        self, request: pb.ConfirmHandoffRequest, context: Any
    ) -> pb.ConfirmHandoffResponse:
        by = acting("ConfirmHandoff", request.operator, department=request.department)
        handoff = ScanAttempt(
            request.idempotency_key,
            required_time(request, "scanned_at"),
            request.from_party,
            self.app.acting_party(by, request.department),
        )
        outcome = custody_rule(lambda: self.app.hand_over(request.shipment_id, handoff, by))
        return pb.ConfirmHandoffResponse(
            custodian=outcome.custodian, status=outcome.status, late=outcome.late
        )

    @translate_errors
    @logs_shipment_coi
    def ReceiveShipment(
        self, request: pb.ReceiveShipmentRequest, context: Any
    ) -> pb.ReceiveShipmentResponse:
        by = acting("ReceiveShipment", request.operator, department=request.department)
        override = override_from(request)
        view = custody_rule(
            lambda: self.app.receive_shipment(
                request.shipment_id,
                list(request.scanned_labels),
                request.from_party,
                override,
                by,
                department=request.department,
                received_at=optional_time(request, "received_at"),
            )
        )
        return pb.ReceiveShipmentResponse(shipment=shipment_message(view))

    @translate_errors
    @logs_shipment_coi
    def InspectReceipt(
        self, request: pb.InspectReceiptRequest, context: Any
    ) -> pb.InspectReceiptResponse:
        by = acting("InspectReceipt", request.operator)
        view = self.app.inspect_receipt(
            request.shipment_id,
            request.intact,
            request.temperature_log_reviewed,
            request.notes,
            by,
            optional_time(request, "inspected_at"),
        )
        return pb.InspectReceiptResponse(shipment=shipment_message(view))

    @translate_errors
    @logs_shipment_coi
    def RecordException(
        self, request: pb.RecordExceptionRequest, context: Any
    ) -> pb.RecordExceptionResponse:
        kind = parse_enum(ExceptionKind, request.kind, "exception kind")
        by = acting("RecordException", request.operator, request.reason)
        occurred_at = optional_time(request, "occurred_at")
        view = self.app.record_exception(request.shipment_id, kind, by, occurred_at)
        return pb.RecordExceptionResponse(shipment=shipment_message(view))

    @translate_errors
    @logs_shipment_coi
    def UploadTemperatureReadings(
        self, request: pb.UploadTemperatureReadingsRequest, context: Any
    ) -> pb.UploadTemperatureReadingsResponse:
        by = acting("UploadTemperatureReadings", request.operator)
        readings = [
            Reading(required_time(r, "measured_at"), r.temperature_c, r.device_id)
            for r in request.readings
        ]
        result = self.app.upload_readings(request.shipment_id, readings, by)
        return pb.UploadTemperatureReadingsResponse(
            recorded=result.recorded,
            excursions=[excursion_message(e) for e in result.excursions],
        )

    @translate_errors
    @logs_shipment_coi
    def GetShipment(self, request: pb.GetShipmentRequest, context: Any) -> pb.GetShipmentResponse:
        view = self.app.shipment(request.shipment_id, Scope.of(current_caller()))
        return pb.GetShipmentResponse(shipment=shipment_message(view))


def register(app: LogisticsApplication) -> Callable[[Any], None]:
    servicer = LogisticsServicer(app)
    return lambda server: pb_grpc.add_LogisticsServiceServicer_to_server(servicer, server)
