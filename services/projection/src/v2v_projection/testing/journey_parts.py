"""The consortium of a generated history and the first half of a journey: enrolment,
collection, labelling, packaging and shipments (custody handoffs, temperatures, windows).

Each function appends `Draft`s (envelope-to-be, recorded at a given time) to a `Journey`;
payloads are the real integration-event messages, filled the way each service fills them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeAlias
from uuid import UUID, uuid5

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1 import common_pb2
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_projection.testing.sealing import Draft

Person = tuple[str, str, str]

FINS = {"HOSP-A": "A1234", "HOSP-C": "C5678", "GMP-B": "B2345", "GMP-D": "D3456"}
HOSPITALS = ("HOSP-A", "HOSP-C")
GMP_SITES = ("GMP-B", "GMP-D")
QC_SITE_OF = {"GMP-B": "QC-B", "GMP-D": "QC-D"}
LOGISTICS_SITE = "LOGI-1"
SITES = (*HOSPITALS, *GMP_SITES, *QC_SITE_OF.values(), LOGISTICS_SITE)
COURIERS = ("C-17", "C-18", "C-21", "C-34")
FRESH_APHERESIS_WINDOW = timedelta(hours=48)

THERAPY_NAMESPACE = UUID("5b0c1f4e-7a3d-5e2b-9c8f-1a2b3c4d5e6f")
Condition: TypeAlias = common_pb2.Condition.ValueType
COLD: Condition = common_pb2.CONDITION_FRESH_COLD
CRYO: Condition = common_pb2.CONDITION_CRYO


def people(site: str) -> dict[str, list[Person]]:
    """Two or three named users per role at a site (deterministic)."""
    tag = site.replace("-", "").lower()
    roles = {
        "collection": ["Nurse Ada", "Nurse Ben", "Dr. Cleo"],
        "manufacturing": ["Operator Dan", "Operator Eve"],
        "qc": ["Analyst Fay", "Analyst Gus"],
        "qp": ["Dr. Quinn Person", "Dr. Rita Qualified"],
        "infusion": ["Nurse Ian", "Nurse Joy", "Dr. Kai Physician"],
        "courier": ["Kim Courier", "Lou Courier"],
    }
    return {
        role: [(f"u-{tag}-{role[:3]}-{i}", name, role) for i, name in enumerate(names)]
        for role, names in roles.items()
    }


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


@dataclass
class Journey:
    """One patient's generated chain: identifiers, sites, a clock and the drafts so far."""

    rng: random.Random
    namespace: UUID
    number: int
    coi: str
    enrolling_site: str
    manufacturing_site: str
    now: datetime
    drafts: list[Draft] = field(default_factory=list)
    din_count: int = 0
    slot_id: str = ""

    @property
    def treating_site(self) -> str:
        return self.enrolling_site

    @property
    def therapy_id(self) -> str:
        return str(uuid5(THERAPY_NAMESPACE, self.coi))

    def uid(self, kind: str, *parts: object) -> str:
        return str(uuid5(self.namespace, ":".join([kind, str(self.number), *map(str, parts)])))

    def din(self, site: str) -> str:
        """A fresh 15-character DIN (flags 00) of the site's facility; unique per history."""
        self.din_count += 1
        sequence = (self.number * 16 + self.din_count) % 999_999 + 1
        return f"{FINS[site]}25{sequence:06d}00"

    def person(self, site: str, role: str, index: int | None = None) -> Person:
        staff = people(site)[role]
        return staff[self.rng.randrange(len(staff)) if index is None else index % len(staff)]

    def advance(self, minimum_minutes: float, maximum_minutes: float) -> datetime:
        self.now += timedelta(minutes=self.rng.uniform(minimum_minutes, maximum_minutes))
        return self.now

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def add(
        self,
        context: str,
        aggregate: tuple[str, str],
        payload: Message,
        site: str,
        actor: Person,
        *,
        occurred_at: datetime | None = None,
        reason: str = "",
        meaning: str = "",
    ) -> None:
        self.drafts.append(
            Draft(
                context,
                aggregate[0],
                aggregate[1],
                self.coi,
                self.now,
                payload,
                site,
                actor,
                occurred_at,
                reason,
                meaning,
            )
        )

    def signature(
        self, person: Person, meaning: str, record: str
    ) -> common_pb2.SignatureManifestation:
        digest = hashlib.sha256(f"{self.coi}|{record}".encode()).hexdigest()
        return common_pb2.SignatureManifestation(
            user_id=person[0],
            printed_name=person[1],
            meaning=meaning,
            signed_at=stamp(self.now),
            record_hash=digest,
        )


def enrol(journey: Journey) -> None:
    site = journey.enrolling_site
    nurse = journey.person(site, "collection")
    therapy = ("Therapy", journey.therapy_id)
    enrolled = intake.PatientEnrolled(
        coi=journey.coi,
        patient_pseudonym=f"PSN-{journey.uid('psn')[:6].upper()}",
        enrolling_site_id=site,
        treating_site_id=journey.treating_site,
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
            coi=journey.coi, collection_id=collection_id, din=din, unit_kind="apheresis-bag"
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
