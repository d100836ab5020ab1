"""The Therapy aggregate: one patient therapy chain (COI) at the collection site.

Every event carries who/where/why (I7: ``actor``, ``site_id``, ``reason``, ``traceparent``)
and the COI. Personal details exist only as ciphertext sealed with the COI's own key.
Clinical times reach the aggregate as the application checked them (`when`: with a zone, not
in the future). Causality within the chain (issue 14): no collection starts before the
enrolment, no unit is labelled before its collection's end, no label scanned before its
labelling (a second scan not before the first), none packaged before its labelling or its
label's verification, no cryopreserved unit frozen after its packaging (InvalidInput naming the
field). Every event tells its envelope when it happened (`occurred_at`): its clinical time,
else (no clinical time, or stored before it was kept) the time it was recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_intake.domain.labels import LabelMismatch, check_label, same_user_mismatch
from v2v_intake.domain.records import CollectionRecord, UnitRecord
from v2v_intake.domain.values import BookedSlot, UnitKind, UnitStatus
from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_platform.ids import Din

THERAPY_NAMESPACE = UUID("5b0c1f4e-7a3d-5e2b-9c8f-1a2b3c4d5e6f")
MAX_UNITS_PER_LABELLING = 20


def therapy_id(coi: str) -> UUID:
    return uuid5(THERAPY_NAMESPACE, coi)


class Therapy(Aggregate):
    class Event(Aggregate.Event):
        coi: str
        actor: dict[str, str]
        site_id: str
        reason: str
        traceparent: str | None

    class Enrolled(Aggregate.Created, Event):
        class_version = 1
        patient_pseudonym: str
        treating_site_id: str
        sealed_personal_details: str
        # when the patient was enrolled (clinical time: as given, else when it was recorded;
        # published as PatientEnrolled.enrolled_at). None only on enrolments recorded before
        # it was kept
        enrolled_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            """When the patient was enrolled: before the clinical time was kept, an enrolment
            was recorded as it happened (the server's clock), so its recording time."""
            return self.enrolled_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            aggregate.enrolled_at = self.enrolled_at
            aggregate.coi = self.coi
            aggregate.patient_pseudonym = self.patient_pseudonym
            aggregate.enrolling_site_id = self.site_id
            aggregate.treating_site_id = self.treating_site_id
            aggregate.sealed_personal_details = self.sealed_personal_details

    class PersonalDetailsErased(Event):
        class_version = 1

        def apply(self, aggregate: Therapy) -> None:
            aggregate.personal_details_erased = True

    class SlotBooked(Event):
        class_version = 1
        manufacturing_site_id: str
        slot_id: str
        slot_date: str
        # when the slot was booked (clinical time, the envelope's occurred_at); None on
        # bookings recorded before it was kept
        booked_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            """When the slot was booked (its recording time for older bookings)."""
            return self.booked_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            slot_date = date.fromisoformat(self.slot_date)
            slot = BookedSlot(self.slot_id, self.manufacturing_site_id, slot_date)
            aggregate.slots.append(slot)

    class CollectionRecorded(Event):
        class_version = 1
        collection_id: str
        collection_site_id: str
        started_at: datetime
        ended_at: datetime
        volume_ml: float
        total_nucleated_cells_e9: float
        cd3_cells_e9: float
        slot_id: str

        @property
        def occurred_at(self) -> datetime:
            """The collection's end (when the apheresis product exists)."""
            return self.ended_at

        def apply(self, aggregate: Therapy) -> None:
            aggregate.collections[self.collection_id] = CollectionRecord(
                self.collection_id,
                self.collection_site_id,
                self.started_at,
                self.ended_at,
                self.volume_ml,
                self.total_nucleated_cells_e9,
                self.cd3_cells_e9,
                self.slot_id,
            )

    class UnitLabelled(Event):
        class_version = 1
        collection_id: str
        din: str
        unit_kind: str
        # when it was labelled (clinical time; published as UnitLabelled.labelled_at); None
        # on labels recorded before it was kept
        labelled_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            """When it was labelled; on labels stored before it was kept (labelled by the
            server's clock), the recording time."""
            return self.labelled_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            key = Din.parse(self.din).data
            aggregate.units[key] = UnitRecord(
                self.din, self.collection_id, UnitKind(self.unit_kind), labelled_at=self.labelled_at
            )

    class LabelScanned(Event):
        class_version = 2
        din: str
        user_id: str
        signature: dict[str, str] | None
        signature_meaning: str
        # when the label was scanned (clinical time; published as LabelScanned.scanned_at);
        # None on scans recorded before it was kept
        scanned_at: datetime | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Scanned before scanners re-authenticated: no manifestation (as published)."""
            state["signature"] = None
            state["signature_meaning"] = ""

        @property
        def occurred_at(self) -> datetime:
            """When the label was scanned; on scans stored before it was kept (scanned by the
            server's clock), the recording time."""
            return self.scanned_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            unit = aggregate.units[Din.parse(self.din).data]
            unit.status = UnitStatus.FIRST_SCAN_DONE
            unit.first_scan_user_id = self.user_id
            unit.first_scan_signature = self.signature
            unit.first_scanned_at = self.scanned_at

    class LabelVerified(Event):
        class_version = 2
        din: str
        first_user_id: str
        second_user_id: str
        first_signature: dict[str, str] | None
        second_signature: dict[str, str] | None
        signature_meaning: str
        # when the second scan verified the label (clinical time; published as
        # LabelVerified.scanned_at); None on verifications recorded before it was kept
        scanned_at: datetime | None = None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Verified before scanners re-authenticated: no manifestations (as published)."""
            state["first_signature"] = None
            state["second_signature"] = None
            state["signature_meaning"] = ""

        @property
        def occurred_at(self) -> datetime:
            """When the second scan verified the label; on verifications stored before it was
            kept (scanned by the server's clock), the recording time."""
            return self.scanned_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            unit = aggregate.units[Din.parse(self.din).data]
            unit.status = UnitStatus.VERIFIED
            unit.verified_at = self.scanned_at

    class LabelMismatchRecorded(Event):
        class_version = 1
        expected_din: str
        scanned_label: str
        scanned_coi: str
        reason_code: str
        explanation: str
        # when the refused scan was made (clinical time; published as
        # LabelMismatchRecorded.scanned_at); None on mismatches recorded before it was kept
        scanned_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            """When the refused scan was made; on mismatches stored before it was kept, the
            recording time."""
            return self.scanned_at or self.timestamp

        def apply(self, aggregate: Therapy) -> None:
            aggregate.mismatches += 1

    class UnitPackaged(Event):
        class_version = 1
        din: str
        condition: str
        temperature_c: float
        window_starts_at: datetime
        # when it was packaged (clinical time, as given; before it could be given, the
        # server's clock when it was recorded)
        packaged_at: datetime
        manufacturing_site_id: str

        @property
        def occurred_at(self) -> datetime:
            return self.packaged_at

        def apply(self, aggregate: Therapy) -> None:
            unit = aggregate.units[Din.parse(self.din).data]
            unit.status = UnitStatus.PACKAGED
            unit.condition = Condition(self.condition)
            unit.manufacturing_site_id = self.manufacturing_site_id
            unit.window_starts_at = self.window_starts_at

    def __init__(self) -> None:
        self.coi = ""
        self.enrolled_at: datetime | None = None
        self.patient_pseudonym = ""
        self.enrolling_site_id = ""
        self.treating_site_id = ""
        self.sealed_personal_details = ""
        self.personal_details_erased = False
        self.slots: list[BookedSlot] = []
        self.collections: dict[str, CollectionRecord] = {}
        self.units: dict[str, UnitRecord] = {}
        self.mismatches = 0

    @classmethod
    def enrol(
        cls,
        *,
        coi: str,
        patient_pseudonym: str,
        treating_site_id: str,
        sealed_personal_details: str,
        by: Attribution,
        enrolled_at: datetime | None = None,
    ) -> Therapy:
        if not patient_pseudonym.strip():
            raise InvalidInput("a patient pseudonym is required")
        if not treating_site_id.strip():
            raise InvalidInput("a treating site id is required")
        therapy: Therapy = cls._create(
            cls.Enrolled,
            id=therapy_id(coi),
            coi=coi,
            patient_pseudonym=patient_pseudonym,
            treating_site_id=treating_site_id,
            sealed_personal_details=sealed_personal_details,
            enrolled_at=enrolled_at,
            **by.event_fields(),
        )
        return therapy

    def _record(self, event_class: type[Any], by: Attribution, **fields: Any) -> None:
        self.trigger_event(event_class, coi=self.coi, **by.event_fields(), **fields)

    def check_open(self) -> None:
        if self.personal_details_erased:
            raise Refused(f"therapy {self.coi} is closed: its personal details were erased")

    def erase_personal_details(self, by: Attribution) -> bool:
        """Record the erasure once; False when it was already recorded."""
        if self.personal_details_erased:
            return False
        self._record(self.PersonalDetailsErased, by)
        return True

    def check_booking_time(self, booked_at: datetime) -> None:
        """A booking is made after the enrolment (InvalidInput naming `booked_at`)."""
        limits.check_not_before(booked_at, "booked_at", self.enrolled_at, "the enrolment")

    def record_slot(self, slot: BookedSlot, booked_at: datetime, by: Attribution) -> None:
        self.check_open()
        self.check_booking_time(booked_at)
        if any(s.slot_id == slot.slot_id for s in self.slots):
            raise Refused(f"slot {slot.slot_id} is already booked for {self.coi}")
        self._record(
            self.SlotBooked,
            by,
            manufacturing_site_id=slot.manufacturing_site_id,
            slot_id=slot.slot_id,
            slot_date=slot.slot_date.isoformat(),
            booked_at=booked_at,
        )

    def slot_for_collection(self, slot_id: str) -> BookedSlot:
        if not self.slots:
            raise Refused(
                f"no manufacturing slot is booked for {self.coi}: book one before collecting"
            )
        if not slot_id:
            return self.slots[-1]
        for slot in self.slots:
            if slot.slot_id == slot_id:
                return slot
        raise Refused(f"slot {slot_id} is not booked for {self.coi}")

    def record_collection(
        self,
        *,
        started_at: datetime,
        ended_at: datetime,
        volume_ml: float,
        total_nucleated_cells_e9: float,
        cd3_cells_e9: float,
        slot_id: str,
        by: Attribution,
    ) -> str:
        self.check_open()
        slot = self.slot_for_collection(slot_id)
        check_collection_values(
            started_at, ended_at, volume_ml, total_nucleated_cells_e9, cd3_cells_e9
        )
        limits.check_not_before(started_at, "started_at", self.enrolled_at, "the enrolment")
        collection_id = f"{self.coi}-A{len(self.collections) + 1:02d}"
        self._record(
            self.CollectionRecorded,
            by,
            collection_id=collection_id,
            collection_site_id=by.site_id,
            started_at=started_at,
            ended_at=ended_at,
            volume_ml=volume_ml,
            total_nucleated_cells_e9=total_nucleated_cells_e9,
            cd3_cells_e9=cd3_cells_e9,
            slot_id=slot.slot_id,
        )
        return collection_id

    def check_labelling(self, collection_id: str, count: int) -> None:
        self.check_open()
        if collection_id not in self.collections:
            raise NotFound(f"no collection {collection_id} under {self.coi}")
        if not 1 <= count <= MAX_UNITS_PER_LABELLING:
            raise InvalidInput(f"unit count must be 1 to {MAX_UNITS_PER_LABELLING}, got {count}")

    def check_labelling_time(self, collection_id: str, labelled_at: datetime) -> None:
        ended_at = self.collections[collection_id].ended_at
        limits.check_not_before(labelled_at, "labelled_at", ended_at, "the collection's end")

    def label_units(
        self,
        collection_id: str,
        dins: Sequence[Din],
        unit_kind: UnitKind,
        by: Attribution,
        labelled_at: datetime | None = None,
    ) -> None:
        """`labelled_at`: when (clinical time, as the application checked it); None keeps no
        labelling time."""
        self.check_labelling(collection_id, len(dins))
        if labelled_at is not None:
            self.check_labelling_time(collection_id, labelled_at)
        for din in dins:
            if din.data in self.units:
                raise Refused(f"DIN {din.data} is already bound to {self.coi}")
            self._record(
                self.UnitLabelled,
                by,
                collection_id=collection_id,
                din=str(din),
                unit_kind=unit_kind.value,
                labelled_at=labelled_at,
            )

    def unit(self, din: str) -> UnitRecord:
        unit = self.units.get(Din.parse(din).data)
        if unit is None:
            raise NotFound(f"no unit {din} under {self.coi}")
        return unit

    def scan_label(
        self,
        din: Din,
        scanned_din: str,
        scanned_coi: str,
        signature: SignatureManifestation,
        by: Attribution,
        scanned_at: datetime | None = None,
    ) -> LabelMismatch | bool:
        """One label scan by the proven person `by` (re-authenticated: `signature`, bound to
        `labels.verification_record`) at `scanned_at` (clinical time, as the application
        checked it; None keeps no scan time). Returns the recorded mismatch, or whether the
        unit is now verified."""
        if signature.user_id != by.user_id:
            raise InvalidInput(f"the scan is signed by {signature.user_id}, not by {by.user_id}")
        self.check_open()
        unit = self.unit(str(din))
        if unit.status in (UnitStatus.VERIFIED, UnitStatus.PACKAGED):
            raise Refused(f"unit {din.data} is already verified")
        if scanned_at is not None:
            self.check_scan_time(din, scanned_at)
        mismatch = check_label(din, self.coi, scanned_din, scanned_coi)
        if mismatch is None and unit.first_scan_user_id == by.user_id:
            mismatch = same_user_mismatch(by.user_id, din)
        if mismatch is not None:
            self._record_mismatch(din, scanned_din, scanned_coi, mismatch, by, scanned_at)
            return mismatch
        signed = {"signature_meaning": signature.meaning, "scanned_at": scanned_at}
        if unit.status is UnitStatus.LABELLED:
            self._record(
                self.LabelScanned,
                by,
                din=unit.din,
                user_id=by.user_id,
                signature=signature.as_dict(),
                **signed,
            )
            return False
        self._record(
            self.LabelVerified,
            by,
            din=unit.din,
            first_user_id=unit.first_scan_user_id,
            second_user_id=by.user_id,
            first_signature=unit.first_scan_signature,
            second_signature=signature.as_dict(),
            **signed,
        )
        return True

    def check_scan_time(self, din: Din, scanned_at: datetime) -> None:
        """No scan of a unit's label before its labelling; no second scan before the first."""
        unit = self.unit(str(din))
        labelling = f"the labelling of {unit.din}"
        limits.check_not_before(scanned_at, "scanned_at", unit.labelled_at, labelling)
        if unit.status is UnitStatus.FIRST_SCAN_DONE:
            first = f"the first scan of {unit.din}"
            limits.check_not_before(scanned_at, "scanned_at", unit.first_scanned_at, first)

    def _record_mismatch(
        self,
        din: Din,
        scanned_din: str,
        scanned_coi: str,
        mismatch: LabelMismatch,
        by: Attribution,
        scanned_at: datetime | None,
    ) -> None:
        self._record(
            self.LabelMismatchRecorded,
            by,
            expected_din=str(din),
            scanned_label=scanned_din,
            scanned_coi=scanned_coi,
            reason_code=mismatch.reason_code.value,
            explanation=mismatch.explanation,
            scanned_at=scanned_at,
        )

    def package_unit(
        self,
        *,
        din: Din,
        condition: Condition,
        temperature_c: float,
        manufacturing_site_id: str,
        frozen_at: datetime | None,
        packaged_at: datetime,
        by: Attribution,
    ) -> datetime:
        """Package a verified unit at `packaged_at` (clinical time, as the application checked
        it); returns the time that starts its stability window."""
        self.check_open()
        unit = self.unit(str(din))
        check_packageable(unit)
        check_packaging_time(unit, packaged_at)
        if not any(s.manufacturing_site_id == manufacturing_site_id for s in self.slots):
            raise Refused(
                f"no slot is booked for {self.coi} at manufacturing site {manufacturing_site_id}"
            )
        limits.check_finite(temperature_c, "temperature_c")
        condition.check_temperature(temperature_c)
        collection = self.collections[unit.collection_id]
        window_starts_at = stability_window_start(condition, collection, frozen_at, packaged_at)
        self._record(
            self.UnitPackaged,
            by,
            din=unit.din,
            condition=condition.value,
            temperature_c=temperature_c,
            window_starts_at=window_starts_at,
            packaged_at=packaged_at,
            manufacturing_site_id=manufacturing_site_id,
        )
        return window_starts_at


def check_collection_values(
    started_at: datetime,
    ended_at: datetime,
    volume_ml: float,
    total_nucleated_cells_e9: float,
    cd3_cells_e9: float,
) -> None:
    limits.check_finite(volume_ml, "volume_ml")
    limits.check_finite(total_nucleated_cells_e9, "total_nucleated_cells_e9")
    limits.check_finite(cd3_cells_e9, "cd3_cells_e9")
    if ended_at <= started_at:
        raise InvalidInput("collection end must be after its start")
    if not volume_ml > 0:
        raise InvalidInput(f"collection volume must be > 0 mL, got {volume_ml:g}")
    if total_nucleated_cells_e9 < 0 or cd3_cells_e9 < 0:
        raise InvalidInput("cell counts cannot be negative")
    if cd3_cells_e9 > total_nucleated_cells_e9:
        raise InvalidInput("CD3+ cells cannot exceed the total nucleated cells")


def check_packageable(unit: UnitRecord) -> None:
    if unit.status is UnitStatus.PACKAGED:
        raise Refused(f"unit {unit.din} is already packaged")
    if unit.status is not UnitStatus.VERIFIED:
        raise Refused(
            f"unit {unit.din} is not verified: two different users must scan its label first"
        )


def check_packaging_time(unit: UnitRecord, packaged_at: datetime) -> None:
    """Not packaged before its labelling nor its label's verification (times not kept on
    older events are not checked)."""
    labelling = f"the labelling of {unit.din}"
    limits.check_not_before(packaged_at, "packaged_at", unit.labelled_at, labelling)
    verification = f"the verification of {unit.din}"
    limits.check_not_before(packaged_at, "packaged_at", unit.verified_at, verification)


def stability_window_start(
    condition: Condition,
    collection: CollectionRecord,
    frozen_at: datetime | None,
    packaged_at: datetime,
) -> datetime:
    """Fresh: the collection end. Cryopreserved: the freeze time given by the operator, between
    the collection's end and the packaging."""
    if condition.is_fresh:
        if frozen_at is not None:
            raise InvalidInput("a freeze time is given only for a cryopreserved unit")
        return collection.ended_at
    if frozen_at is None:
        raise InvalidInput("a cryopreserved unit needs its freeze time")
    if frozen_at < collection.ended_at:
        raise InvalidInput(
            f"frozen_at {frozen_at.isoformat()} (the freeze time) is before the end of the"
            f" collection at {collection.ended_at.isoformat()}"
        )
    if frozen_at > packaged_at:
        raise InvalidInput(
            f"frozen_at {frozen_at.isoformat()} is after the packaging at"
            f" {packaged_at.isoformat()}: a unit is frozen before it is packaged cryopreserved"
        )
    return frozen_at
