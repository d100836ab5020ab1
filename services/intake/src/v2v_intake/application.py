"""The intake application: use cases over the Therapy aggregate, in plain values.

Refusals that must be on record (label mismatches, invariant I2) are saved before the
refusal is raised. Each scan of the two-person label verification is made by a proven person:
they re-authenticate against this site's signer store (`ESigner`) before anything is recorded.
Commands come only from the site this intake service runs for (`check_local`): the outbox
relay signs every event with that site's key. COI and DIN numbers and the open therapy of each
pseudonym are the unpublished records'; personal details are sealed with the COI's own key
(`KeyStore`), so destroying the key erases them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from eventsourcing.persistence import IntegrityError

from v2v_intake.domain import personal_data
from v2v_intake.domain.labels import LABEL_CHECK, LabelMismatch, verification_record
from v2v_intake.domain.therapy import Therapy, therapy_id
from v2v_intake.domain.values import PersonalDetails, UnitKind, UnitStatus, parse_choice
from v2v_intake.ports import KeyStore, ManufacturingSlots, NoKeys, NoManufacturingSlots
from v2v_intake.unpublished_records import IntakeUnpublishedRecords
from v2v_intake.views import CollectionInput, PackagingInput, TherapyView, therapy_view
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_platform.esign import ESigner, SignatureRequest
from v2v_platform.esign.persons import as_proven, prove
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.labels import NO_PRODUCT_CODES, Label, ProductCodes
from v2v_platform.labels.service import unit_label
from v2v_platform.scope import Scope
from v2v_platform.service_application import (
    CLOCK_SKEW,
    MAX_ATTEMPTS,
    NotWired,
    ServiceApplication,
    parse_coi,
    parse_din,
    utc_now,
)


class IntakeApplication(ServiceApplication[IntakeUnpublishedRecords]):
    context = "intake"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        unpublished: IntakeUnpublishedRecords | None = None,
        clock: Callable[[], datetime] = utc_now,
        fin: str = "",
        keys: KeyStore | None = None,
        manufacturing: ManufacturingSlots | None = None,
        signer: ESigner | None = None,
        product_codes: ProductCodes = NO_PRODUCT_CODES,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
    ) -> None:
        super().__init__(
            env,
            site_id=site_id,
            unpublished=unpublished,
            clock=clock,
            max_attempts=max_attempts,
            clock_skew=clock_skew,
        )
        self.fin = fin
        self.keys: KeyStore = keys if keys is not None else NoKeys()
        self.manufacturing: ManufacturingSlots = (
            manufacturing if manufacturing is not None else NoManufacturingSlots()
        )
        self._signer = signer
        self.product_codes = product_codes

    @property
    def signer(self) -> ESigner:
        """The e-signer that proves the persons of label verification (this site's signer
        store); NotWired in a process built only to relay."""
        if self._signer is None:
            raise NotWired("the intake application was built without its e-signer")
        return self._signer

    def enrol_patient(
        self,
        patient_pseudonym: str,
        details: PersonalDetails,
        treating_site_id: str,
        by: Attribution,
        enrolled_at: datetime | None = None,
    ) -> str:
        """`enrolled_at`: when the patient was enrolled (clinical time; when not given, the
        time it is recorded). No collection of the therapy may start before it: an enrolment
        entered after the fact gives the time it happened."""
        by = self.check_local(by)
        at = self.when(enrolled_at, "enrolled_at")
        limits.check_id(patient_pseudonym, "patient_pseudonym")
        limits.check_id(treating_site_id, "treating_site_id")
        if not patient_pseudonym.strip():
            raise InvalidInput("a patient pseudonym is required")
        if details.birth_date > self.clock().date():
            raise InvalidInput("birth date is in the future")
        coi, already_open = self.unpublished.claim_pseudonym(patient_pseudonym, self._new_coi)
        if already_open and self.find(Therapy, therapy_id(coi)) is not None:
            raise Refused(f"pseudonym {patient_pseudonym} already has an open therapy {coi}")
        sealed = personal_data.seal(details, self.keys.get_or_create(coi), coi)
        therapy = Therapy.enrol(
            coi=coi,
            patient_pseudonym=patient_pseudonym,
            treating_site_id=treating_site_id,
            sealed_personal_details=sealed,
            by=by,
            enrolled_at=at,
        )
        try:
            self.save(therapy)
        except IntegrityError:
            raise Refused(
                f"pseudonym {patient_pseudonym} already has an open therapy {coi}"
            ) from None
        return coi

    def get_patient(self, coi: str, scope: Scope) -> TherapyView:
        """The enrolling and the treating site read a therapy (auditors read every one); only
        the enrolling site sees the personal details."""
        therapy = self._therapy(coi)
        scope.require_sees({therapy.enrolling_site_id, therapy.treating_site_id}, f"therapy {coi}")
        details = None
        if scope.acts_for(therapy.enrolling_site_id) and not therapy.personal_details_erased:
            details = self._open_details(therapy)
        return therapy_view(therapy, details)

    def erase_personal_details(self, coi: str, by: Attribution) -> None:
        """Crypto-shred: destroy the COI's key, record the erasure, release the pseudonym."""
        by = self.check_local(by)
        if not by.reason.strip():
            raise InvalidInput("erasing personal details needs a reason")
        therapy = self._therapy(coi)
        self.keys.destroy(therapy.coi)
        if therapy.erase_personal_details(by):
            self.save_or_conflict(therapy, what=therapy.coi)
        self.unpublished.release_pseudonym(therapy.patient_pseudonym, therapy.coi)

    def book_slot(
        self,
        coi: str,
        manufacturing_site_id: str,
        slot_date: date,
        by: Attribution,
        booked_at: datetime | None = None,
    ) -> tuple[str, str, date]:
        """`booked_at`: when the booking was made (clinical time; default now): not before
        the enrolment; the slot is not on an earlier day."""
        by = self.check_local(by)
        limits.check_id(manufacturing_site_id, "manufacturing_site_id")
        booked = self.when(booked_at, "booked_at")
        therapy = self._therapy(coi)
        therapy.check_open()
        therapy.check_booking_time(booked)
        if slot_date < booked.date():
            raise InvalidInput(
                f"slot_date {slot_date} is before the day of the booking ({booked.date()})"
            )
        slot = self.manufacturing.book(therapy.coi, manufacturing_site_id, slot_date, by)
        therapy.record_slot(slot, booked, by)
        self.save_or_conflict(therapy, what=therapy.coi)
        return slot.slot_id, slot.manufacturing_site_id, slot.slot_date

    def record_collection(self, coi: str, collection: CollectionInput, by: Attribution) -> str:
        by = self.check_local(by)
        started_at = self.when(collection.started_at, "collection start")
        ended_at = self.when(collection.ended_at, "collection end")
        limits.check_id(collection.slot_id, "slot_id")
        therapy = self._therapy(coi)
        collection_id = therapy.record_collection(
            started_at=started_at,
            ended_at=ended_at,
            volume_ml=collection.volume_ml,
            total_nucleated_cells_e9=collection.total_nucleated_cells_e9,
            cd3_cells_e9=collection.cd3_cells_e9,
            slot_id=collection.slot_id,
            by=by,
        )
        self.save_or_conflict(therapy, what=therapy.coi)
        return collection_id

    def label_units(
        self,
        coi: str,
        collection_id: str,
        count: int,
        unit_kind: str,
        by: Attribution,
        labelled_at: datetime | None = None,
    ) -> list[str]:
        """`labelled_at`: when the units were labelled (clinical time; default now), not before
        the collection's end. Checked before any DIN is drawn."""
        by = self.check_local(by)
        at = self.when(labelled_at, "labelled_at")
        limits.check_id(collection_id, "collection_id")
        kind = parse_choice(UnitKind, limits.check_id(unit_kind, "unit_kind"), "unit kind")
        therapy = self._therapy(coi)
        therapy.check_labelling(collection_id, count)
        therapy.check_labelling_time(collection_id, at)
        year = self._year()
        numbers = self.unpublished.issue_dins(self.fin, year, count)
        dins = [issue_din(self.fin, year, n) for n in numbers]
        therapy.label_units(collection_id, dins, kind, by, at)
        self.save_or_conflict(therapy, what=therapy.coi)
        return [str(din) for din in dins]

    def verify_label(
        self,
        coi: str,
        din: str,
        scanned_din: str,
        scanned_coi: str,
        signature: SignatureRequest | None,
        by: Attribution,
        scanned_at: datetime | None = None,
    ) -> bool:
        """One scan by a proven person; True once two different people scanned a matching
        label. The scanner re-authenticates (`signature`, meaning "verification", signer role
        "collection": `labels.LABEL_CHECK`) before anything is recorded, and is recorded as the
        proven signer. The labels are read as their bounded echoes: a refusal records and
        repeats no more of them. `scanned_at`: when the label was scanned (clinical time;
        default now), not before the unit's labelling nor, for the second scan, before the
        first; a time refused is refused before the re-authentication, nothing recorded."""
        by = self.check_local(by)
        at = self.when(scanned_at, "scanned_at")
        therapy = self._therapy(coi)
        unit_din = parse_din(din)
        unit = therapy.unit(str(unit_din))
        if unit.status in (UnitStatus.LABELLED, UnitStatus.FIRST_SCAN_DONE):
            therapy.check_scan_time(unit_din, at)
        record = verification_record(therapy.coi, unit.din)
        proof = prove(self.signer, self.site_id, signature, LABEL_CHECK, by.user_id, record)
        by = as_proven(by, proof)
        scanned = limits.echo(scanned_din), limits.echo(scanned_coi)
        outcome = therapy.scan_label(unit_din, *scanned, proof, by, at)
        self.save_or_conflict(therapy, what=therapy.coi)
        if isinstance(outcome, LabelMismatch):
            raise Refused(f"label refused ({outcome.reason_code.value}): {outcome.explanation}")
        return outcome

    def package_unit(
        self, coi: str, din: str, packaging: PackagingInput, by: Attribution
    ) -> datetime:
        """`packaging.packaged_at`: when the unit was packaged (clinical time; default now),
        not before its labelling nor its label's verification; a cryopreserved unit's
        `frozen_at` not after it."""
        by = self.check_local(by)
        packaged_at = self.when(packaging.packaged_at, "packaged_at")
        limits.check_id(packaging.manufacturing_site_id, "manufacturing_site_id")
        condition = parse_choice(
            Condition, limits.check_id(packaging.condition, "condition"), "condition"
        )
        frozen_at = packaging.frozen_at
        if frozen_at is not None:
            frozen_at = self.when(frozen_at, "frozen_at")
        therapy = self._therapy(coi)
        window_starts_at = therapy.package_unit(
            din=parse_din(din),
            condition=condition,
            temperature_c=packaging.temperature_c,
            manufacturing_site_id=packaging.manufacturing_site_id,
            frozen_at=frozen_at,
            packaged_at=packaged_at,
            by=by,
        )
        self.save_or_conflict(therapy, what=therapy.coi)
        return window_starts_at

    def unit_label(
        self,
        coi: str,
        din: str,
        scope: Scope,
        product_code: str | None = None,
        expires_at: datetime | None = None,
    ) -> Label:
        """The ISBT 128 label of a bag this site labelled, to this site only (NotFound, as if
        absent, to any other); a product code only from the site's loaded codes."""
        therapy = self._therapy(coi)
        scope.require_related({therapy.enrolling_site_id}, f"therapy {therapy.coi}")
        unit = therapy.unit(str(parse_din(din)))
        lines = (f"Collected at {therapy.enrolling_site_id}", f"FIN {self.fin}")
        return unit_label(
            parse_din(unit.din), therapy.coi, self.product_codes, product_code, expires_at, lines
        )

    def _year(self) -> int:
        return self.clock().year % 100

    def _new_coi(self) -> str:
        year = self._year()
        [number] = self.unpublished.issue_numbers("COI", self.fin, year)
        return issue_coi(self.fin, year, number).value

    def _therapy(self, coi: str) -> Therapy:
        value = parse_coi(coi).value
        therapy = self.find(Therapy, therapy_id(value))
        if therapy is None:
            raise NotFound(f"no therapy {value}")
        return therapy

    def _open_details(self, therapy: Therapy) -> PersonalDetails | None:
        key = self.keys.get(therapy.coi)
        if key is None:
            return None
        return personal_data.open_sealed(therapy.sealed_personal_details, key, therapy.coi)
