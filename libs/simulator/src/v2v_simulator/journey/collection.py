"""Intake at the collection site: enrol the patient (COI issued), book a manufacturing slot,
record the apheresis, label the bags, verify each label by the two collection staff (each
re-authenticating with their own password), package the bags fresh (2-8 °C) or
cryopreserved (<= -150 °C)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

from v2v.common.v1.common_pb2 import CONDITION_CRYO, CONDITION_FRESH_COLD
from v2v.intake.v1 import intake_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.context import Journey

SLOT_DAYS = 14  # slots are booked on one of the next 14 days
GIVEN_NAMES = ("Ada", "Ben", "Chloé", "Dara", "Emil", "Farah", "Gus", "Hana", "Ines", "Jon")
FAMILY_NAMES = ("Example", "Sample", "Test", "Demo", "Placeholder", "Mock")


def slot_day(patient_number: int, cycle: int) -> str:
    return (date.today() + timedelta(days=1 + (patient_number + cycle) % SLOT_DAYS)).isoformat()


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
            ),
        ).coi
    journey.world.record_enrolment(journey.coi)


BOOKING_TIMEOUT_S = 45.0
"""Above intake's wait (30 s) for the GMP site to learn the enrolment before it books."""


def collect(journey: Journey, cycle: int) -> None:
    """One apheresis: slot, collection, labels (two-person verified), packaging."""
    plan = journey.plan
    hospital = plan.hospital
    intake = journey.world.clients.intake(hospital.site_id)
    collector, second_collector = hospital.collection_staff
    with journey.step(f"book slot (cycle {cycle})"):
        journey.slot_id = call(
            intake.BookSlot,
            pb.BookSlotRequest(
                operator=collector,
                coi=journey.coi,
                manufacturing_site_id=plan.hospital.gmp.site_id,
                slot_date=slot_day(plan.number, cycle),
            ),
            timeout_s=BOOKING_TIMEOUT_S,
        ).slot.slot_id
    ended = datetime.now(UTC) - timedelta(hours=1, minutes=plan.number % 50)
    with journey.step(f"record apheresis (cycle {cycle})"):
        collection_id = call(
            intake.RecordCollection,
            pb.RecordCollectionRequest(
                operator=collector,
                coi=journey.coi,
                started_at=timestamp(ended - timedelta(hours=4)),
                ended_at=timestamp(ended),
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
                ),
            ).dins
        )
    for din in dins:
        for who in (collector, second_collector):
            with journey.step("verify label"):
                request = pb.VerifyLabelRequest(
                    operator=who,
                    coi=journey.coi,
                    din=din,
                    scanned_din=din,
                    scanned_coi=journey.coi,
                    signature=hospital.reauthentication(who, "verification"),
                )
                call(intake.VerifyLabel, request)
        with journey.step("package bag"):
            call(intake.PackageUnit, _packaging(journey, din, ended))
    journey.apheresis_dins = dins


def _packaging(journey: Journey, din: str, collection_ended: datetime) -> pb.PackageUnitRequest:
    plan = journey.plan
    request = pb.PackageUnitRequest(
        operator=plan.hospital.collection_staff[0],
        coi=journey.coi,
        din=din,
        manufacturing_site_id=plan.hospital.gmp.site_id,
    )
    if plan.cryo:
        request.condition = CONDITION_CRYO
        request.temperature_c = -180.0
        request.frozen_at.CopyFrom(timestamp(collection_ended + timedelta(minutes=30)))
    else:
        request.condition = CONDITION_FRESH_COLD
        request.temperature_c = 4.0
    return request
