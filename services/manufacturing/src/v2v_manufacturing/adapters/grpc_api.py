"""gRPC API (v2v.manufacturing.v1.ManufacturingService) over the application.

The caller's site and roles come from its client certificate (`current_caller()`), never
from request fields; domain refusals become status codes via `translate_errors`. `ACCESS`
declares, per method, the roles it needs and the relationship to the records it touches
(`v2v_platform.access_policy`); the HTTP routes declare the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from v2v.common.v1 import common_pb2
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v.manufacturing.v1 import manufacturing_service_pb2_grpc as pb_grpc
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.values import (
    ProcessStep,
    QcResult,
    parse_step_kind,
)
from v2v_manufacturing.views import BatchView, CalendarView
from v2v_platform.access_policy import Access, Relation, reads, required_roles, writes
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.auth.identity import Role, current_caller
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import (
    attribution,
    condition_from_proto,
    condition_to_proto,
    optional_time,
    signature_from_proto,
    timestamp,
)
from v2v_platform.scope import Scope

SERVICE_NAME = "v2v.manufacturing.v1.ManufacturingService"
OWN_SITE_WORK = writes(Relation.OWN_SITE, Role.MANUFACTURING)
ACCESS: dict[str, Access] = {
    # this site's own calendar, receipts and batches (another site: PERMISSION_DENIED)
    "SetSlotCapacity": OWN_SITE_WORK,
    "ReceiveUnit": OWN_SITE_WORK,
    "StartBatch": OWN_SITE_WORK,
    "RecordProcessStep": OWN_SITE_WORK,
    "RecordInProcessQc": OWN_SITE_WORK,
    "Harvest": OWN_SITE_WORK,
    "FailBatch": OWN_SITE_WORK,
    # the COI's enrolling site (from intake's PatientEnrolled) books; its booking site or
    # this site releases; anyone else: NOT_FOUND
    "BookSlot": writes(Relation.PATIENT, Role.COLLECTION),
    "ReleaseSlot": writes(Relation.PATIENT, Role.COLLECTION, Role.MANUFACTURING),
    # capacity and number booked to all; bookings only to the site that made them
    "GetSlotCalendar": reads(Relation.FILTERED, Role.MANUFACTURING, Role.COLLECTION, Role.AUDITOR),
    # this site's batches and the units bound for it: this site and auditors only
    "GetBatch": reads(Relation.PATIENT, Role.MANUFACTURING, Role.AUDITOR),
    "ListExpectedUnits": reads(Relation.PATIENT, Role.MANUFACTURING, Role.AUDITOR),
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)


def acting_roles(method: str) -> list[Role]:
    """The method's roles in a fixed order: a caller holding several acts in the first."""
    return sorted(ACCESS[method].roles)


def acting(method: str, operator: common_pb2.Operator, reason: str = "") -> Attribution:
    return attribution(
        current_caller(), acting_roles(method), operator.user_id, operator.printed_name, reason
    )


def override_from(request: pb.StartBatchRequest) -> WindowOverride | None:
    if not request.HasField("window_override"):
        return None
    given = request.window_override
    return WindowOverride(given.reason, signature_from_proto(given.signature))


def calendar_response(view: CalendarView) -> pb.GetSlotCalendarResponse:
    return pb.GetSlotCalendarResponse(
        manufacturing_site_id=view.manufacturing_site_id,
        slot_date=view.slot_date,
        capacity=view.capacity,
        booked_count=view.booked,
        booked=[
            pb.BookedSlot(
                slot_id=b.slot_id,
                coi=b.coi,
                booking_site_id=b.booking_site_id,
                recorded=b.recorded,
            )
            for b in view.bookings
        ],
    )


def parameters(items: dict[str, str]) -> Sequence[pb.ProcessParameter]:
    return [pb.ProcessParameter(name=k, value=v) for k, v in sorted(items.items())]


def hold_condition(view: BatchView) -> common_pb2.Condition.ValueType:
    if view.hold_condition is None:
        return common_pb2.Condition.CONDITION_UNSPECIFIED
    return condition_to_proto(view.hold_condition)


def batch_response(view: BatchView) -> pb.GetBatchResponse:
    return pb.GetBatchResponse(
        batch_id=view.batch_id,
        coi=view.coi,
        manufacturing_site_id=view.manufacturing_site_id,
        status=view.status,
        input_dins=view.input_dins,
        product_dins=view.product_dins,
        hold_condition=hold_condition(view),
        steps=[
            pb.ProcessStep(
                step_kind=s.step_kind,
                device_type=s.device_type,
                device_serial=s.device_serial,
                reagent_lots=s.reagent_lots,
                vector_lot=s.vector_lot,
                parameters=parameters(s.parameters),
                performed_at=timestamp(s.performed_at),
            )
            for s in view.steps
        ],
        qc_results=[
            pb.QcResult(
                test=q.test,
                value=q.value,
                unit=q.unit,
                passed=q.passed,
                measured_at=timestamp(at),
            )
            for q, at in zip(view.qc_results, view.qc_measured_at, strict=True)
        ],
        failure_reason=view.failure_reason,
        window_overridden=view.window_overridden,
        started_at=timestamp(view.started_at),
    )


class ManufacturingServicer(pb_grpc.ManufacturingServiceServicer):
    def __init__(self, app: ManufacturingApplication) -> None:
        self._app = app

    @translate_errors
    def SetSlotCapacity(self, request: pb.SetSlotCapacityRequest, context: Any) -> Any:
        by = acting("SetSlotCapacity", request.operator)
        view = self._app.set_slot_capacity(
            request.manufacturing_site_id, request.slot_date, request.capacity, by
        )
        return pb.SetSlotCapacityResponse(capacity=view.capacity, booked=view.booked)

    @translate_errors
    def BookSlot(self, request: pb.BookSlotRequest, context: Any) -> Any:
        by = acting("BookSlot", request.operator)
        booking = self._app.book_slot(
            request.coi, request.manufacturing_site_id, request.slot_date, by
        )
        return pb.BookSlotResponse(
            slot_id=booking.slot_id,
            manufacturing_site_id=booking.manufacturing_site_id,
            slot_date=booking.slot_date,
        )

    @translate_errors
    def ReleaseSlot(self, request: pb.ReleaseSlotRequest, context: Any) -> Any:
        self._app.release_slot(
            request.slot_id, acting("ReleaseSlot", request.operator, request.reason)
        )
        return pb.ReleaseSlotResponse()

    @translate_errors
    def GetSlotCalendar(self, request: pb.GetSlotCalendarRequest, context: Any) -> Any:
        scope = Scope.of(current_caller())
        view = self._app.slot_calendar(request.manufacturing_site_id, request.slot_date, scope)
        return calendar_response(view)

    @translate_errors
    def ReceiveUnit(self, request: pb.ReceiveUnitRequest, context: Any) -> Any:
        by = acting("ReceiveUnit", request.operator)
        at = optional_time(request, "received_at")
        receipt = self._app.receive_unit(request.scanned_din, request.scanned_coi, by, at)
        return pb.ReceiveUnitResponse(
            coi=receipt.coi,
            din=receipt.din,
            slot_id=receipt.slot_id,
            condition=condition_to_proto(receipt.condition),
        )

    @translate_errors
    def StartBatch(self, request: pb.StartBatchRequest, context: Any) -> Any:
        by = acting("StartBatch", request.operator)
        at = optional_time(request, "started_at")
        view = self._app.start_batch(list(request.input_dins), override_from(request), by, at)
        return pb.StartBatchResponse(batch_id=view.batch_id, coi=view.coi)

    @translate_errors
    def RecordProcessStep(self, request: pb.RecordProcessStepRequest, context: Any) -> Any:
        step = ProcessStep(
            parse_step_kind(request.step_kind),
            request.device_type,
            request.device_serial,
            tuple(request.reagent_lots),
            request.vector_lot,
            {p.name: p.value for p in request.parameters},
        )
        by = acting("RecordProcessStep", request.operator)
        at = optional_time(request, "performed_at")
        self._app.record_process_step(request.batch_id, step, by, at)
        return pb.RecordProcessStepResponse()

    @translate_errors
    def RecordInProcessQc(self, request: pb.RecordInProcessQcRequest, context: Any) -> Any:
        result = QcResult(request.test, request.value, request.unit, request.passed)
        by = acting("RecordInProcessQc", request.operator)
        at = optional_time(request, "measured_at")
        self._app.record_in_process_qc(request.batch_id, result, by, at)
        return pb.RecordInProcessQcResponse()

    @translate_errors
    def Harvest(self, request: pb.HarvestRequest, context: Any) -> Any:
        hold = condition_from_proto(request.hold_condition)
        by = acting("Harvest", request.operator)
        at = optional_time(request, "harvested_at")
        dins = self._app.harvest(request.batch_id, request.product_unit_count, hold, by, at)
        return pb.HarvestResponse(product_dins=dins)

    @translate_errors
    def FailBatch(self, request: pb.FailBatchRequest, context: Any) -> Any:
        by = acting("FailBatch", request.operator, request.reason)
        self._app.fail_batch(request.batch_id, by, optional_time(request, "failed_at"))
        return pb.FailBatchResponse()

    @translate_errors
    def GetBatch(self, request: pb.GetBatchRequest, context: Any) -> Any:
        return batch_response(self._app.batch(request.batch_id, Scope.of(current_caller())))

    @translate_errors
    def ListExpectedUnits(self, request: pb.ListExpectedUnitsRequest, context: Any) -> Any:
        units = self._app.expected_units(request.coi, Scope.of(current_caller()))
        return pb.ListExpectedUnitsResponse(
            units=[
                pb.ExpectedUnit(
                    din=u.din,
                    coi=u.coi,
                    condition=condition_to_proto(u.condition),
                    window_starts_at=timestamp(u.window_starts_at),
                    slot_id=u.slot_id,
                )
                for u in units
            ]
        )


def register(app: ManufacturingApplication) -> Any:
    servicer = ManufacturingServicer(app)

    def add(server: Any) -> None:
        pb_grpc.add_ManufacturingServiceServicer_to_server(servicer, server)

    return add
