"""The intake gRPC API (v2v.intake.v1.IntakeService) over the intake application.

The caller's site and roles come from its client certificate (`current_caller()`), never from
request fields; reads are decided by the application from the caller's `Scope`. `ACCESS`
declares each method's roles and relationship: commands are this intake site's own
(OWN_SITE: `check_local`), a therapy is read by its enrolling and treating sites and auditors
(PATIENT: NOT_FOUND to any other site). Each label scan carries the scanning person's
re-authentication (`signature`): a failed one is UNAUTHENTICATED (counted towards the signer's
lock-out), a signer without the signer role "collection" PERMISSION_DENIED, a signer other than
the operator INVALID_ARGUMENT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from v2v.common.v1.common_pb2 import Operator
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v.intake.v1 import intake_service_pb2_grpc as pb_grpc
from v2v_intake.application import IntakeApplication
from v2v_intake.domain.values import PersonalDetails
from v2v_intake.views import CollectionInput, PackagingInput, TherapyView
from v2v_platform.access_policy import Access, Relation, reads, required_roles, writes
from v2v_platform.attribution import Attribution
from v2v_platform.auth import Role, current_caller
from v2v_platform.esign.persons import requested
from v2v_platform.grpc_service import translate_errors
from v2v_platform.proto_values import (
    attribution,
    condition_from_proto,
    condition_to_proto,
    iso_date,
    optional_time,
    required_time,
    timestamp,
)
from v2v_platform.scope import Scope

SERVICE_NAME = "v2v.intake.v1.IntakeService"
COMMAND = writes(Relation.OWN_SITE, Role.COLLECTION)
ACCESS: dict[str, Access] = {
    "EnrolPatient": COMMAND,
    "GetPatient": reads(Relation.PATIENT, Role.COLLECTION, Role.INFUSION, Role.AUDITOR),
    "ErasePersonalDetails": COMMAND,
    "BookSlot": COMMAND,
    "RecordCollection": COMMAND,
    "LabelUnits": COMMAND,
    "VerifyLabel": COMMAND,
    "PackageUnit": COMMAND,
}
REQUIRED_ROLES = required_roles(SERVICE_NAME, ACCESS)


def acting(method: str, operator: Operator, reason: str = "") -> Attribution:
    """The acting operator of `method`; site and role from the caller's certificate."""
    caller = current_caller()
    roles = sorted(ACCESS[method].roles)
    return attribution(caller, roles, operator.user_id, operator.printed_name, reason)


def personal_details(message: pb.PersonalDetails) -> PersonalDetails:
    return PersonalDetails(
        message.given_name,
        message.family_name,
        message.mrn,
        iso_date(message.birth_date, "personal_details.birth_date"),
    )


def therapy_response(view: TherapyView) -> pb.GetPatientResponse:
    response = pb.GetPatientResponse(
        coi=view.coi,
        patient_pseudonym=view.patient_pseudonym,
        enrolling_site_id=view.enrolling_site_id,
        treating_site_id=view.treating_site_id,
        personal_details_erased=view.personal_details_erased,
    )
    if view.personal_details is not None:
        details = view.personal_details
        response.personal_details.CopyFrom(
            pb.PersonalDetails(
                given_name=details.given_name,
                family_name=details.family_name,
                mrn=details.mrn,
                birth_date=details.birth_date.isoformat(),
            )
        )
    for slot in view.slots:
        response.slots.add(
            slot_id=slot.slot_id,
            manufacturing_site_id=slot.manufacturing_site_id,
            slot_date=slot.slot_date.isoformat(),
        )
    for c in view.collections:
        response.collections.add(
            collection_id=c.collection_id,
            collection_site_id=c.collection_site_id,
            started_at=timestamp(c.started_at),
            ended_at=timestamp(c.ended_at),
            volume_ml=c.volume_ml,
            total_nucleated_cells_e9=c.total_nucleated_cells_e9,
            cd3_cells_e9=c.cd3_cells_e9,
            slot_id=c.slot_id,
        )
    for u in view.units:
        response.units.add(
            din=u.din,
            collection_id=u.collection_id,
            unit_kind=u.unit_kind,
            status=u.status,
            condition=condition_to_proto(u.condition) if u.condition else 0,
            manufacturing_site_id=u.manufacturing_site_id,
        )
    return response


class IntakeServicer(pb_grpc.IntakeServiceServicer):
    def __init__(self, app: IntakeApplication) -> None:
        self._app = app

    @translate_errors
    def EnrolPatient(self, request: pb.EnrolPatientRequest, context: Any) -> Any:
        coi = self._app.enrol_patient(
            request.patient_pseudonym,
            personal_details(request.personal_details),
            request.treating_site_id,
            acting("EnrolPatient", request.operator),
            optional_time(request, "enrolled_at"),
        )
        return pb.EnrolPatientResponse(coi=coi)

    @translate_errors
    def GetPatient(self, request: pb.GetPatientRequest, context: Any) -> Any:
        scope = Scope.of(current_caller())
        return therapy_response(self._app.get_patient(request.coi, scope))

    @translate_errors
    def ErasePersonalDetails(self, request: pb.ErasePersonalDetailsRequest, context: Any) -> Any:
        by = acting("ErasePersonalDetails", request.operator, request.reason)
        self._app.erase_personal_details(request.coi, by)
        return pb.ErasePersonalDetailsResponse()

    @translate_errors
    def BookSlot(self, request: pb.BookSlotRequest, context: Any) -> Any:
        slot_id, site_id, slot_date = self._app.book_slot(
            request.coi,
            request.manufacturing_site_id,
            iso_date(request.slot_date, "slot_date"),
            acting("BookSlot", request.operator),
            optional_time(request, "booked_at"),
        )
        slot = pb.BookedSlot(
            slot_id=slot_id, manufacturing_site_id=site_id, slot_date=slot_date.isoformat()
        )
        return pb.BookSlotResponse(slot=slot)

    @translate_errors
    def RecordCollection(self, request: pb.RecordCollectionRequest, context: Any) -> Any:
        collection = CollectionInput(
            required_time(request, "started_at"),
            required_time(request, "ended_at"),
            request.volume_ml,
            request.total_nucleated_cells_e9,
            request.cd3_cells_e9,
            request.slot_id,
        )
        by = acting("RecordCollection", request.operator)
        collection_id = self._app.record_collection(request.coi, collection, by)
        return pb.RecordCollectionResponse(collection_id=collection_id)

    @translate_errors
    def LabelUnits(self, request: pb.LabelUnitsRequest, context: Any) -> Any:
        dins = self._app.label_units(
            request.coi,
            request.collection_id,
            request.count,
            request.unit_kind,
            acting("LabelUnits", request.operator),
            optional_time(request, "labelled_at"),
        )
        return pb.LabelUnitsResponse(dins=dins)

    @translate_errors
    def VerifyLabel(self, request: pb.VerifyLabelRequest, context: Any) -> Any:
        given = request.signature
        verified = self._app.verify_label(
            request.coi,
            request.din,
            request.scanned_din,
            request.scanned_coi,
            requested(given.user_id, given.password, given.meaning),
            acting("VerifyLabel", request.operator),
            optional_time(request, "scanned_at"),
        )
        return pb.VerifyLabelResponse(verified=verified)

    @translate_errors
    def PackageUnit(self, request: pb.PackageUnitRequest, context: Any) -> Any:
        packaging = PackagingInput(
            condition_from_proto(request.condition),
            request.temperature_c,
            request.manufacturing_site_id,
            optional_time(request, "frozen_at"),
            optional_time(request, "packaged_at"),
        )
        by = acting("PackageUnit", request.operator)
        window = self._app.package_unit(request.coi, request.din, packaging, by)
        return pb.PackageUnitResponse(window_starts_at=timestamp(window))


def register(app: IntakeApplication) -> Callable[[Any], None]:
    """Adds the intake servicer over `app` to a gRPC server (`ServiceRuntime.start_grpc`)."""
    servicer = IntakeServicer(app)

    def add(server: Any) -> None:
        pb_grpc.add_IntakeServiceServicer_to_server(servicer, server)

    return add
