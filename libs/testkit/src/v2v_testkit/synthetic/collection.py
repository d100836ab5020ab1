"""The first steps of a synthetic journey: enrolment, slot booking, apheresis collection,
labelling with two-person verification (rarely after a mismatch) and packaging.

Each function appends `Draft`s (envelope-to-be, recorded at a given time) to a `Journey`;
payloads are the real integration-event messages, filled the way each service fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_testkit.synthetic.consortium import COLD, CRYO, Condition, stamp
from v2v_testkit.synthetic.patient import Journey


def enrol(journey: Journey) -> None:
    site = journey.enrolling_site
    nurse = journey.person(site, "collection")
    therapy = ("Therapy", journey.therapy_id)
    enrolled = intake.PatientEnrolled(
        coi=journey.coi,
        patient_pseudonym=f"PSN-{journey.uid('psn')[:6].upper()}",
        enrolling_site_id=site,
        treating_site_id=journey.treating_site,
        enrolled_at=stamp(journey.now),  # intake always publishes when the patient was enrolled
    )
    journey.add("intake", therapy, enrolled, site, nurse)
    book_slot(journey)


def book_slot(journey: Journey) -> None:
    site, gmp = journey.enrolling_site, journey.manufacturing_site
    journey.advance(20, 90)
    slot_day = (journey.now + timedelta(days=2)).date()
    slot_id = f"SLOT-{gmp}-{slot_day:%Y%m%d}-{journey.rng.randrange(1, 5)}"
    journey.slot_id = slot_id
    booked = manufacturing.SlotBooked(
        coi=journey.coi,
        manufacturing_site_id=gmp,
        slot_id=slot_id,
        slot_date=slot_day.isoformat(),
        booking_site_id=site,
    )
    booking = ("SlotBooking", journey.uid("slot", slot_id))
    journey.add("manufacturing", booking, booked, gmp, journey.person(gmp, "manufacturing"))
    journey.advance(1, 5)
    recorded = intake.SlotBooked(
        coi=journey.coi,
        manufacturing_site_id=gmp,
        slot_id=slot_id,
        slot_date=slot_day.isoformat(),
    )
    therapy = ("Therapy", journey.therapy_id)
    journey.add("intake", therapy, recorded, site, journey.person(site, "collection"))


@dataclass(frozen=True)
class Collected:
    dins: list[str]
    ended_at: datetime
    window_starts_at: datetime
    condition: Condition


def collect(journey: Journey, cycle: int, condition: Condition | None = None) -> Collected:
    """Apheresis, labels, two-person verification (rarely after a mismatch), packaging;
    fresh (2-8 °C) or cryopreserved unless the condition is given."""
    site = journey.enrolling_site
    therapy = ("Therapy", journey.therapy_id)
    started = journey.advance(18 * 60, 30 * 60)
    ended = journey.advance(180, 300)
    collection_id = journey.uid("collection", cycle)
    recorded = intake.CollectionRecorded(
        coi=journey.coi,
        collection_id=collection_id,
        collection_site_id=site,
        started_at=stamp(started),
        ended_at=stamp(ended),
        volume_ml=round(journey.rng.uniform(150, 280), 1),
        total_nucleated_cells_e9=round(journey.rng.uniform(6, 18), 2),
        cd3_cells_e9=round(journey.rng.uniform(2, 9), 2),
        slot_id="",
    )
    journey.add("intake", therapy, recorded, site, journey.person(site, "collection"))
    dins = [journey.din(site) for _ in range(2 if journey.chance(0.2) else 1)]
    for din in dins:
        journey.advance(5, 15)
        labelled = intake.UnitLabelled(
            coi=journey.coi,
            collection_id=collection_id,
            din=din,
            unit_kind="apheresis-bag",
            labelled_at=stamp(journey.now),
        )
        journey.add("intake", therapy, labelled, site, journey.person(site, "collection", 0))
        verify_label(journey, din)
    if condition is None:
        condition = CRYO if journey.chance(0.3) else COLD
    window_start = ended
    if condition == CRYO:
        window_start = journey.advance(120, 200)
    for din in dins:
        journey.advance(5, 20)
        packaged = intake.UnitPackaged(
            coi=journey.coi,
            din=din,
            condition=condition,
            window_starts_at=stamp(window_start),
            packaged_at=stamp(journey.now),
            manufacturing_site_id=journey.manufacturing_site,
            temperature_c=-160.0 if condition == CRYO else round(journey.rng.uniform(3, 6), 1),
        )
        journey.add("intake", therapy, packaged, site, journey.person(site, "collection", 0))
    return Collected(dins, ended, window_start, condition)


def verify_label(journey: Journey, din: str) -> None:
    site = journey.enrolling_site
    therapy = ("Therapy", journey.therapy_id)
    first, second = journey.person(site, "collection", 0), journey.person(site, "collection", 1)
    journey.advance(1, 4)
    scanned = intake.LabelScanned(coi=journey.coi, din=din, user_id=first[0])
    journey.add("intake", therapy, scanned, site, first)
    if journey.chance(0.05):
        journey.advance(1, 3)
        wrong = f"{din[:-4]}9900"
        mismatch = intake.LabelMismatchRecorded(
            coi=journey.coi,
            expected_din=din,
            scanned_label=wrong,
            reason_code="din-mismatch",
            explanation=f"scanned {wrong}, expected {din}",
            scanned_coi=journey.coi,
        )
        journey.add("intake", therapy, mismatch, site, second)
    journey.advance(1, 4)
    verified = intake.LabelVerified(
        coi=journey.coi, din=din, first_user_id=first[0], second_user_id=second[0]
    )
    journey.add("intake", therapy, verified, site, second)
