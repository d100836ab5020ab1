"""One product unit at its treating site: receipt -> storage -> thaw (cryo) -> two-person
bedside verification -> infusion -> adverse events. One aggregate per (site, DIN).

The aggregate enforces the order of the steps; whether the unit may be infused (release,
post-release failures, windows) is decided by `bedside` from facts learned from Kafka. The
persons of the two-person checks (both bedside scans, the infusion's witness) are proven: each
event carries the manifestation of their re-authentication.
A refused bedside scan of this unit is recorded here too (I2): it changes nothing else.

Every step carries its clinical time (when it happened at the ward), which is also the
envelope's `occurred_at` (each event's `occurred_at` property, never stored); the steps keep
their order in time (`clinical_order`): storage after receipt (and after a previous storage),
thaw after receipt and storage, the first bedside scan after the thaw (cryo) or the receipt
(fresh), the second after the first, the infusion after the verification, an adverse event's
onset after the infusion.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_infusion.domain.clinical_order import check_receipt
from v2v_infusion.domain.values import (
    NAMESPACE,
    KnownProduct,
    Mismatch,
    check_dose,
    require_text,
)
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.limits import check_not_before
from v2v_platform.protocol_rules import ProtocolRules


class UnitStatus(StrEnum):
    RECEIVED = "received"
    STORED = "stored"
    THAWING = "thawing"
    FIRST_SCAN_RECORDED = "first-scan-recorded"
    VERIFIED = "verified"
    INFUSED = "infused"


BEFORE_BEDSIDE = (UnitStatus.RECEIVED, UnitStatus.STORED, UnitStatus.THAWING)


def person(by: Attribution) -> dict[str, str]:
    return {"user_id": by.user_id, "printed_name": by.printed_name}


def check_signed_by(signature: SignatureManifestation, by: Attribution) -> None:
    if signature.user_id != by.user_id:
        raise InvalidInput(f"the scan is signed by {signature.user_id}, not by {by.user_id}")


class ProductAtSite(Aggregate):
    class Received(AttributedCreated):
        din: str
        treating_site_id: str
        batch_id: str
        condition: str
        received_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.received_at

    class Stored(AttributedEvent):
        din: str
        location: str
        condition: str
        stored_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.stored_at

        def apply(self, aggregate: Any) -> None:
            aggregate.storage_location = self.location
            aggregate.stored_at = self.stored_at
            aggregate.status = UnitStatus.STORED

    class ThawStarted(AttributedEvent):
        din: str
        thaw_started_at: datetime
        infuse_by: datetime
        window_minutes: int
        protocol_rules: str = ""  # the rules' tag ("" on events stored before it was recorded)

        @property
        def occurred_at(self) -> datetime:
            return self.thaw_started_at

        def apply(self, aggregate: Any) -> None:
            aggregate.thaw_started_at = self.thaw_started_at
            aggregate.thaw_infuse_by = self.infuse_by
            aggregate.status = UnitStatus.THAWING

    class BedsideScanRecorded(AttributedEvent):
        class_version = 2
        din: str
        wristband_coi: str
        scanned_at: datetime
        signature: dict[str, str] | None
        signature_meaning: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Scanned before nurses re-authenticated: no manifestation (as published)."""
            state["signature"] = None
            state["signature_meaning"] = ""

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

        def apply(self, aggregate: Any) -> None:
            aggregate.first_scanned_at = self.scanned_at
            aggregate.first_user = {
                "user_id": self.actor["user_id"],
                "printed_name": self.actor["printed_name"],
            }
            aggregate.first_signature = self.signature
            aggregate.status = UnitStatus.FIRST_SCAN_RECORDED

    class BedsideVerified(AttributedEvent):
        class_version = 2
        din: str
        first_user: dict[str, str]
        second_user: dict[str, str]
        verified_at: datetime
        release_basis: str
        infuse_by: datetime
        first_signature: dict[str, str] | None
        second_signature: dict[str, str] | None
        signature_meaning: str
        protocol_rules: str = ""  # the rules' tag ("" on events stored before it was recorded)

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Verified before nurses re-authenticated: no manifestations (as published)."""
            state["first_signature"] = None
            state["second_signature"] = None
            state["signature_meaning"] = ""

        @property
        def occurred_at(self) -> datetime:
            return self.verified_at

        def apply(self, aggregate: Any) -> None:
            aggregate.verified_at = self.verified_at
            aggregate.second_user = dict(self.second_user)
            aggregate.release_basis = self.release_basis
            aggregate.verified_infuse_by = self.infuse_by
            aggregate.status = UnitStatus.VERIFIED

    class BedsideMismatchRecorded(AttributedEvent):
        scanned_din: str
        wristband_coi: str
        reason_code: str
        explanation: str
        scanned_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

    class InfusionAdministered(AttributedEvent):
        class_version = 2
        din: str
        administered_at: datetime
        dose_car_cells_per_kg: float
        volume_ml: float
        administered_by: dict[str, str]
        witnessed_by: dict[str, str]
        release_basis: str
        witness_signature: dict[str, str] | None
        signature_meaning: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Infused before witnesses re-authenticated: no manifestation (as published)."""
            state["witness_signature"] = None
            state["signature_meaning"] = ""

        @property
        def occurred_at(self) -> datetime:
            return self.administered_at

        def apply(self, aggregate: Any) -> None:
            aggregate.administered_at = self.administered_at
            aggregate.status = UnitStatus.INFUSED

    class AdverseEventRecorded(AttributedEvent):
        din: str
        kind: str
        grade: int
        onset_at: datetime
        notes: str

        @property
        def occurred_at(self) -> datetime:
            return self.onset_at

        def apply(self, aggregate: Any) -> None:
            aggregate.adverse_events.append(self)

    def __init__(
        self,
        coi: str,
        din: str,
        treating_site_id: str,
        batch_id: str,
        condition: str,
        received_at: datetime,
        **_: Any,
    ) -> None:
        self.coi = coi
        self.din = din
        self.treating_site_id = treating_site_id
        self.batch_id = batch_id
        self.condition = Condition(condition)
        self.received_at = received_at
        self.status = UnitStatus.RECEIVED
        self.storage_location = ""
        self.stored_at: datetime | None = None
        self.thaw_started_at: datetime | None = None
        self.thaw_infuse_by: datetime | None = None
        self.first_user: dict[str, str] | None = None
        self.first_signature: dict[str, str] | None = None
        self.first_scanned_at: datetime | None = None
        self.second_user: dict[str, str] | None = None
        self.release_basis = ""
        self.verified_infuse_by: datetime | None = None
        self.verified_at: datetime | None = None
        self.administered_at: datetime | None = None
        self.adverse_events: list[ProductAtSite.AdverseEventRecorded] = []

    @staticmethod
    def create_id(site_id: str, din_data: str) -> UUID:
        return uuid5(NAMESPACE, f"{site_id}/{din_data}")

    @classmethod
    def receive(
        cls,
        product: KnownProduct,
        site_id: str,
        received_at: datetime,
        by: Attribution,
        released_at: datetime | None = None,
        delivered_at: datetime | None = None,
    ) -> ProductAtSite:
        """Received at `received_at`: not before the product's release (`released_at`) nor
        its delivery here (`delivered_at`), each when known."""
        check_receipt(received_at, released_at, delivered_at)
        received: ProductAtSite = cls._create(
            cls.Received,
            id=cls.create_id(site_id, product.din_data),
            din=product.din,
            treating_site_id=site_id,
            batch_id=product.batch_id,
            condition=product.condition.value,
            received_at=received_at,
            **attributed(by, product.coi),
        )
        return received

    @property
    def verifiers(self) -> tuple[dict[str, str], ...]:
        return tuple(user for user in (self.first_user, self.second_user) if user is not None)

    def store(self, location: str, stored_at: datetime, by: Attribution) -> None:
        if self.status not in (UnitStatus.RECEIVED, UnitStatus.STORED):
            raise Refused(f"unit {self.din} is {self.status.value}; it can no longer be stored")
        check_not_before(stored_at, "stored_at", self.received_at, "the unit was received")
        check_not_before(stored_at, "stored_at", self.stored_at, "its previous storage")
        self.trigger_event(
            self.Stored,
            din=self.din,
            location=require_text("storage location", location),
            condition=self.condition.value,
            stored_at=stored_at,
            **attributed(by, self.coi),
        )

    def start_thaw(self, thaw_started_at: datetime, rules: ProtocolRules, by: Attribution) -> None:
        """The post-thaw window (`rules.post_thaw`) runs from `thaw_started_at`."""
        if self.condition is not Condition.CRYO:
            raise Refused(f"unit {self.din} is {self.condition.value} product: only cryo thaws")
        if self.status not in (UnitStatus.RECEIVED, UnitStatus.STORED):
            raise Refused(f"unit {self.din} is {self.status.value}; it cannot start thawing")
        field = "thaw_started_at"
        check_not_before(thaw_started_at, field, self.received_at, "the unit was received")
        check_not_before(thaw_started_at, field, self.stored_at, "the unit was stored")
        self.trigger_event(
            self.ThawStarted,
            din=self.din,
            thaw_started_at=thaw_started_at,
            infuse_by=thaw_started_at + rules.post_thaw,
            window_minutes=rules.post_thaw_minutes,
            protocol_rules=rules.tag,
            **attributed(by, self.coi),
        )

    def record_first_scan(
        self,
        wristband_coi: str,
        scanned_at: datetime,
        signature: SignatureManifestation,
        by: Attribution,
    ) -> None:
        """The first good scan, by the proven person `by` (`signature`)."""
        assert self.status in BEFORE_BEDSIDE, "checked by bedside.check_scan"
        check_signed_by(signature, by)
        if self.thaw_started_at is not None:
            check_not_before(scanned_at, "scanned_at", self.thaw_started_at, "its thaw started")
        check_not_before(scanned_at, "scanned_at", self.received_at, "the unit was received")
        self.trigger_event(
            self.BedsideScanRecorded,
            din=self.din,
            wristband_coi=wristband_coi,
            scanned_at=scanned_at,
            signature=signature.as_dict(),
            signature_meaning=signature.meaning,
            **attributed(by, self.coi),
        )

    def verify(
        self,
        verified_at: datetime,
        release_basis: str,
        infuse_by: datetime,
        rules: ProtocolRules,
        signature: SignatureManifestation,
        by: Attribution,
    ) -> None:
        """Verified for infusion by `infuse_by`, the deadline `rules` gave (see `bedside`), by
        the proven person `by` (`signature`) after the first scan's."""
        assert self.first_user is not None, "checked by bedside.check_scan"
        check_signed_by(signature, by)
        first_scan = self.first_scanned_at
        check_not_before(verified_at, "scanned_at", first_scan, "the first bedside scan")
        self.trigger_event(
            self.BedsideVerified,
            din=self.din,
            first_user=dict(self.first_user),
            second_user=person(by),
            verified_at=verified_at,
            release_basis=release_basis,
            infuse_by=infuse_by,
            protocol_rules=rules.tag,
            first_signature=self.first_signature,
            second_signature=signature.as_dict(),
            signature_meaning=signature.meaning,
            **attributed(by, self.coi),
        )

    def record_mismatch(
        self,
        scanned_din: str,
        wristband_coi: str,
        mismatch: Mismatch,
        scanned_at: datetime,
        by: Attribution,
    ) -> None:
        self.trigger_event(
            self.BedsideMismatchRecorded,
            scanned_din=scanned_din,
            wristband_coi=wristband_coi,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            scanned_at=scanned_at,
            **attributed(by, self.coi),
        )

    def administer(
        self,
        administered_at: datetime,
        dose_car_cells_per_kg: float,
        volume_ml: float,
        witness_signature: SignatureManifestation,
        release_basis: str,
        by: Attribution,
    ) -> None:
        """Infused by `by`, witnessed by the proven person who signed `witness_signature`."""
        check_dose(dose_car_cells_per_kg, volume_ml)
        self.check_administration(by.user_id, witness_signature.user_id)
        verified = self.verified_at
        check_not_before(administered_at, "administered_at", verified, "its bedside verification")
        self.trigger_event(
            self.InfusionAdministered,
            din=self.din,
            administered_at=administered_at,
            dose_car_cells_per_kg=dose_car_cells_per_kg,
            volume_ml=volume_ml,
            administered_by=person(by),
            witnessed_by={
                "user_id": witness_signature.user_id,
                "printed_name": witness_signature.printed_name,
            },
            release_basis=release_basis,
            witness_signature=witness_signature.as_dict(),
            signature_meaning=witness_signature.meaning,
            **attributed(by, self.coi),
        )

    def check_administration(self, administrator_id: str, witness_id: str) -> None:
        """Only a bedside-verified unit, by one verifier witnessed by the other."""
        if self.status is UnitStatus.INFUSED:
            raise Refused(f"unit {self.din} was already infused")
        if self.status is not UnitStatus.VERIFIED:
            raise Refused(f"unit {self.din} is {self.status.value}, not bedside-verified")
        verifier_ids = {user["user_id"] for user in self.verifiers}
        if {administrator_id, witness_id} != verifier_ids:
            shown = " and ".join(sorted(verifier_ids))
            raise Refused(
                f"unit {self.din} was verified by {shown}: one of them administers it and the"
                " other witnesses"
            )

    def record_adverse_event(
        self, kind: str, grade: int, onset_at: datetime, notes: str, by: Attribution
    ) -> None:
        if self.administered_at is None:
            raise Refused(f"unit {self.din} has not been infused: no adverse event yet")
        if onset_at < self.administered_at:
            raise InvalidInput("the onset of an adverse event cannot precede the infusion")
        self.trigger_event(
            self.AdverseEventRecorded,
            din=self.din,
            kind=kind,
            grade=grade,
            onset_at=onset_at,
            notes=notes.strip(),
            **attributed(by, self.coi),
        )
