"""Intake at the collection site: enrol the patient (COI issued), book a manufacturing slot,
record the apheresis, label the bags, verify each label by the two collection staff (each
re-authenticating with their own password), package the bags fresh (2-8 °C) or
cryopreserved (<= -150 °C)."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

from v2v.common.v1.common_pb2 import CONDITION_CRYO, CONDITION_FRESH_COLD
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.calendar import Cycle
from v2v_simulator.journey.context import Journey

GIVEN_NAMES = ("Ada", "Ben", "Chloé", "Dara", "Emil", "Farah", "Gus", "Hana", "Ines", "Jon")
FAMILY_NAMES = ("Example", "Sample", "Test", "Demo", "Placeholder", "Mock")


def enrol(journey: Journey) -> None:
    plan = journey.plan
    collector = plan.hospital.collection_staff[0]
    with journey.step("enrol patient"):
        journey.coi = call(
            journey.world.clients.intake(plan.hospital.site_id).EnrolPatient,
            pb.EnrolPatientRequest(
                operator=collector,
                patient_pseudonym=f"PSN-{uuid4()}",
                personal_details=pb.PersonalDetails(
                    given_name=GIVEN_NAMES[plan.number % len(GIVEN_NAMES)],
                    family_name=FAMILY_NAMES[plan.number % len(FAMILY_NAMES)],
                    mrn=f"MRN-{plan.hospital.site_id}-{plan.number:05d}",
                    birth_date=f"{1950 + plan.number % 50}-0{1 + plan.number % 9}-15",
                ),
                treating_site_id=plan.hospital.site_id,
                enrolled_at=timestamp(journey.calendar.enrolled),
            ),
        ).coi
    journey.world.record_enrolment(journey.coi)


MINUTE = timedelta(minutes=1)
BOOKING_TIMEOUT_S = 45.0
"""Above intake's wait (30 s) for the GMP site to learn the enrolment before it books."""


def collect(journey: Journey, cycle: int) -> None:
    """One apheresis: slot, collection, labels (two-person verified), packaging."""
    plan = journey.plan
    hospital = plan.hospital
    intake = journey.world.clients.intake(hospital.site_id)
    collector, second_collector = hospital.collection_staff
    times = journey.calendar.cycles[cycle - 1]
    with journey.step(f"book slot (cycle {cycle})"):
        journey.slot_id = call(
            intake.BookSlot,
            pb.BookSlotRequest(
                operator=collector,
                coi=journey.coi,
                manufacturing_site_id=plan.hospital.gmp.site_id,
                slot_date=journey.calendar.slot_date(cycle),
                booked_at=timestamp(times.booked),
            ),
            timeout_s=BOOKING_TIMEOUT_S,
        ).slot.slot_id
    with journey.step(f"record apheresis (cycle {cycle})"):
        collection_id = call(
            intake.RecordCollection,
            pb.RecordCollectionRequest(
                operator=collector,
                coi=journey.coi,
                started_at=timestamp(times.collection_started),
                ended_at=timestamp(times.collection_ended),
                volume_ml=180.0 + plan.number % 60,
                total_nucleated_cells_e9=10.0 + plan.number % 5,
                cd3_cells_e9=5.0 + plan.number % 3,
                slot_id=journey.slot_id,
            ),
        ).collection_id
    with journey.step("label bags"):
        dins = list(
            call(
                intake.LabelUnits,
                pb.LabelUnitsRequest(
                    operator=collector,
                    coi=journey.coi,
                    collection_id=collection_id,
                    count=plan.apheresis_bags,
                    unit_kind="apheresis-bag",
                    labelled_at=timestamp(times.labelled),
                ),
            ).dins
        )
    for n, din in enumerate(dins):
        # each bag's two scans a minute apart, every bag verified by `times.verified`
        scans = (times.verified - (2 * (len(dins) - n) - k) * MINUTE for k in (0, 1))
        for who, scanned_at in zip((collector, second_collector), scans, strict=True):
            with journey.step("verify label"):
                request = pb.VerifyLabelRequest(
                    operator=who,
                    coi=journey.coi,
                    din=din,
                    scanned_din=din,
                    scanned_coi=journey.coi,
                    signature=hospital.reauthentication(who, "verification"),
                    scanned_at=timestamp(scanned_at),
                )
                call(intake.VerifyLabel, request)
        with journey.step("package bag"):
            call(intake.PackageUnit, _packaging(journey, din, times))
    journey.apheresis_dins = dins


def _packaging(journey: Journey, din: str, times: Cycle) -> pb.PackageUnitRequest:
    plan = journey.plan
    request = pb.PackageUnitRequest(
        operator=plan.hospital.collection_staff[0],
        coi=journey.coi,
        din=din,
        manufacturing_site_id=plan.hospital.gmp.site_id,
        packaged_at=timestamp(times.packaged),
    )
    if plan.cryo:
        request.condition = CONDITION_CRYO
        request.temperature_c = -180.0
        request.frozen_at.CopyFrom(timestamp(times.frozen))
    else:
        request.condition = CONDITION_FRESH_COLD
        request.temperature_c = 4.0
    return request
