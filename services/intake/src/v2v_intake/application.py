"""The intake application: use cases over the Therapy aggregate, in plain values.

Refusals that must be on record (label mismatches, invariant I2) are saved before the
refusal is raised. Commands come only from the site this intake service runs for: the
outbox relay signs every event with that site's key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from v2v_intake import personal_data
from v2v_intake.domain.labels import LabelMismatch
from v2v_intake.domain.therapy import Therapy, therapy_id
from v2v_intake.domain.values import PersonalDetails, UnitKind, parse_choice
from v2v_intake.ports import KeyStore, ManufacturingSlots
from v2v_intake.registers import IntakeRegisters
from v2v_intake.views import CollectionInput, PackagingInput, Reader, TherapyView, therapy_view
from v2v_platform import telemetry
from v2v_platform.attribution import Attribution
from v2v_platform.conditions import Condition
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Coi, Din, InvalidIdentifier, issue_coi, issue_din
from v2v_platform.traced_application import TracedApplication


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IntakeDependencies:
    registers: IntakeRegisters
    keys: KeyStore
    manufacturing: ManufacturingSlots
    fin: str
    site_id: str
    clock: Callable[[], datetime] = utc_now


class NotWired(RuntimeError):
    """The application was built without dependencies (e.g. by the relay) and cannot command."""


class IntakeApplication(TracedApplication):
    def __init__(
        self, env: dict[str, str] | None = None, dependencies: IntakeDependencies | None = None
    ) -> None:
        super().__init__(env)
        self._dependencies = dependencies

    @property
    def deps(self) -> IntakeDependencies:
        if self._dependencies is None:
            raise NotWired("IntakeApplication built without dependencies")
        return self._dependencies

    def enrol_patient(
        self,
        patient_pseudonym: str,
        details: PersonalDetails,
        treating_site_id: str,
        by: Attribution,
    ) -> str:
        by = self._checked(by)
        if not patient_pseudonym.strip():
            raise InvalidInput("a patient pseudonym is required")
        if details.birth_date > self.deps.clock().date():
            raise InvalidInput("birth date is in the future")
        coi, already_open = self.deps.registers.claim_pseudonym(patient_pseudonym, self._new_coi)
        if already_open and self._exists(coi):
            raise Refused(f"pseudonym {patient_pseudonym} already has an open therapy {coi}")
        sealed = personal_data.seal(details, self.deps.keys.get_or_create(coi), coi)
        therapy = Therapy.enrol(
            coi=coi,
            patient_pseudonym=patient_pseudonym,
            treating_site_id=treating_site_id,
            sealed_personal_details=sealed,
            by=by,
        )
        try:
            self.save(therapy)
        except IntegrityError:
            raise Refused(
                f"pseudonym {patient_pseudonym} already has an open therapy {coi}"
            ) from None
        return coi

    def get_patient(self, coi: str, reader: Reader) -> TherapyView:
        therapy = self._therapy(coi)
        readers = {therapy.enrolling_site_id, therapy.treating_site_id}
        if reader.site_id not in readers and not reader.is_auditor:
            raise Forbidden(f"site {reader.site_id} may not read {therapy.coi}")
        details = None
        if reader.site_id == therapy.enrolling_site_id and not therapy.personal_details_erased:
            details = self._open_details(therapy)
        return therapy_view(therapy, details)

    def erase_personal_details(self, coi: str, by: Attribution) -> None:
        """Crypto-shred: destroy the COI's key, record the erasure, release the pseudonym."""
        by = self._checked(by)
        if not by.reason.strip():
            raise InvalidInput("erasing personal details needs a reason")
        therapy = self._therapy(coi)
        self.deps.keys.destroy(therapy.coi)
        if therapy.erase_personal_details(by):
            self._save(therapy)
        self.deps.registers.release_pseudonym(therapy.patient_pseudonym, therapy.coi)

    def book_slot(
        self, coi: str, manufacturing_site_id: str, slot_date: date, by: Attribution
    ) -> tuple[str, str, date]:
        by = self._checked(by)
        therapy = self._therapy(coi)
        therapy.check_open()
        if slot_date < self.deps.clock().date():
            raise InvalidInput(f"slot date {slot_date} is in the past")
        slot = self.deps.manufacturing.book(therapy.coi, manufacturing_site_id, slot_date, by)
        therapy.record_slot(slot, by)
        self._save(therapy)
        return slot.slot_id, slot.manufacturing_site_id, slot.slot_date

    def record_collection(self, coi: str, collection: CollectionInput, by: Attribution) -> str:
        by = self._checked(by)
        therapy = self._therapy(coi)
        collection_id = therapy.record_collection(
            started_at=collection.started_at,
            ended_at=collection.ended_at,
            volume_ml=collection.volume_ml,
            total_nucleated_cells_e9=collection.total_nucleated_cells_e9,
            cd3_cells_e9=collection.cd3_cells_e9,
            slot_id=collection.slot_id,
            now=self.deps.clock(),
            by=by,
        )
        self._save(therapy)
        return collection_id

    def label_units(
        self, coi: str, collection_id: str, count: int, unit_kind: str, by: Attribution
    ) -> list[str]:
        by = self._checked(by)
        kind = parse_choice(UnitKind, unit_kind, "unit kind")
        therapy = self._therapy(coi)
        therapy.check_labelling(collection_id, count)
        year = self._year()
        numbers = self.deps.registers.issue_numbers("DIN", self.deps.fin, year, count)
        dins = [issue_din(self.deps.fin, year, n) for n in numbers]
        therapy.label_units(collection_id, dins, kind, by)
        self._save(therapy)
        return [str(din) for din in dins]

    def verify_label(
        self, coi: str, din: str, scanned_din: str, scanned_coi: str, by: Attribution
    ) -> bool:
        """One scan; True once two different users scanned a matching label."""
        by = self._checked(by)
        therapy = self._therapy(coi)
        outcome = therapy.scan_label(_din(din), scanned_din, scanned_coi, by)
        self._save(therapy)
        if isinstance(outcome, LabelMismatch):
            raise Refused(f"label refused ({outcome.reason_code.value}): {outcome.explanation}")
        return outcome

    def package_unit(
        self, coi: str, din: str, packaging: PackagingInput, by: Attribution
    ) -> datetime:
        by = self._checked(by)
        therapy = self._therapy(coi)
        window_starts_at = therapy.package_unit(
            din=_din(din),
            condition=parse_choice(Condition, packaging.condition, "condition"),
            temperature_c=packaging.temperature_c,
            manufacturing_site_id=packaging.manufacturing_site_id,
            frozen_at=packaging.frozen_at,
            now=self.deps.clock(),
            by=by,
        )
        self._save(therapy)
        return window_starts_at

    def _checked(self, by: Attribution) -> Attribution:
        if by.site_id != self.deps.site_id:
            raise Forbidden(
                f"this intake service records for site {self.deps.site_id}, not {by.site_id}"
            )
        if by.traceparent is None:
            return replace(by, traceparent=telemetry.current_traceparent())
        return by

    def _year(self) -> int:
        return self.deps.clock().year % 100

    def _new_coi(self) -> str:
        year = self._year()
        [number] = self.deps.registers.issue_numbers("COI", self.deps.fin, year)
        return issue_coi(self.deps.fin, year, number).value

    def _exists(self, coi: str) -> bool:
        try:
            self.repository.get(therapy_id(coi))
        except AggregateNotFoundError:
            return False
        return True

    def _therapy(self, coi: str) -> Therapy:
        try:
            value = Coi.parse(coi).value
        except InvalidIdentifier as error:
            raise InvalidInput(str(error)) from None
        try:
            therapy: Therapy = self.repository.get(therapy_id(value))
        except AggregateNotFoundError:
            raise NotFound(f"no therapy {value}") from None
        return therapy

    def _save(self, therapy: Therapy) -> None:
        try:
            self.save(therapy)
        except IntegrityError:
            raise Conflict(f"{therapy.coi} was changed concurrently; retry") from None

    def _open_details(self, therapy: Therapy) -> PersonalDetails | None:
        key = self.deps.keys.get(therapy.coi)
        if key is None:
            return None
        return personal_data.open_sealed(therapy.sealed_personal_details, key, therapy.coi)


def _din(text: str) -> Din:
    try:
        return Din.parse(text)
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None
