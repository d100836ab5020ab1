"""A shipment of units of ONE COI from an origin to a destination (I2, I3, I5): sites, or
departments of sites (`site:<ID>/<department>`; between two departments of one site, an
intra-site transfer follows the same rules).

Custody has exactly one holder at a time (`custodian`: `site:<ID>`, `site:<ID>/<department>`
or `courier:<ID>`) and passes only by an accepted handoff: the custodian offered the shipment
to the receiving party by its own call (`HandoffOffered`; a shipment created with a courier is
offered to that courier) and the receiving party scanned exactly the manifest
(`domain.parties`). Every refused scan, offer, handoff or receipt is recorded as a
`ScanMismatchRecorded` event with its reason code, and nothing else changes. Each courier scan,
offer and handoff carries a client-generated idempotency key, recorded on its event: the
outcome of a key already seen is re-derived from the events, never applied twice.

Clinical times keep the chain causal: the shipment was created (packed) at `created_at`, as
the origin gave it; no scan, offer or handoff precedes it, and no receipt precedes it or the
last handoff (the pickup), no inspection precedes the receipt and no exception the
creation. A time out of sequence is invalid input naming its field
(INVALID_ARGUMENT / 422) and nothing is recorded. The stability window is judged on these
clinical times (a handoff's scan time, the receipt's `received_at`), so a journey entered
after the fact is judged by when it happened. Each event with a clinical time gives it to its
envelope as `occurred_at` (a property, never stored; the exception's is its stored field).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from v2v_logistics.domain.matching import (
    WINDOW_BREACHED,
    WRONG_DESTINATION,
    WRONG_STATE,
    Mismatch,
    UnitLookup,
    match_label,
    missing_units,
)
from v2v_logistics.domain.parties import (
    Offer,
    Parties,
    check_claimed_giver,
    check_offer,
    giver_of_handoff,
)
from v2v_logistics.domain.temperatures import Excursion, excursions
from v2v_logistics.domain.values import (
    COURIER_PREFIX,
    SITE_PREFIX,
    ExceptionKind,
    Reading,
    ScanAttempt,
    ShipmentStatus,
    courier_party,
    site_party,
)
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.limits import check_not_before
from v2v_platform.protocol_rules import ProtocolRules


@dataclass(frozen=True)
class ScanOutcome:
    """What a scan or handoff led to; the same key always gets the same outcome."""

    accepted: bool
    din: str = ""
    remaining: tuple[str, ...] = ()
    late: bool = False
    custodian: str = ""
    status: str = ""
    mismatch: Mismatch | None = None
    offered_to: str = ""


@dataclass(frozen=True)
class ShipmentPlan:
    """What a new shipment is, as checked by the application."""

    coi: str
    manifest: tuple[str, ...]
    condition: Condition
    origin_site_id: str
    destination_site_id: str
    shipper_id: str
    data_logger_id: str
    courier_id: str
    window_ends_at: datetime | None
    window_rule: str
    protocol_rules: str
    """The tag of the protocol rules that set the window (`ProtocolRules.tag`)."""
    origin_department: str = ""
    destination_department: str = ""
    """The departments it goes from and to ("": the site as a whole)."""


class Shipment(Aggregate):
    class Created(AttributedCreated):
        manifest: list[str]
        condition: str
        origin_site_id: str
        destination_site_id: str
        shipper_id: str
        data_logger_id: str
        custodian: str
        assigned_courier_id: str
        window_ends_at: datetime | None
        window_rule: str
        created_at: datetime
        protocol_rules: str = ""
        """`ProtocolRules.tag`; "" on shipments created before events recorded it."""
        origin_department: str = ""
        destination_department: str = ""
        """The departments it goes from and to ("": the site as a whole, and on shipments
        created before departments)."""

        @property
        def occurred_at(self) -> datetime:
            return self.created_at

    class CourierAssigned(AttributedEvent):
        courier_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.assigned_courier_id = self.courier_id

    class UnitScanned(AttributedEvent):
        din: str
        from_party: str
        receiving_party: str
        scanned_at: datetime
        late: bool
        idempotency_key: str

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

        def apply(self, aggregate: Any) -> None:
            scanned = aggregate.pending.setdefault(self.receiving_party, [])
            scanned.append(self.din)
            aggregate.note_scan_time(self.scanned_at)
            remaining = tuple(d for d in aggregate.manifest if d not in scanned)
            aggregate.outcomes[self.idempotency_key] = ScanOutcome(
                True, self.din, remaining, self.late, aggregate.custodian, aggregate.status.value
            )

    class HandoffOffered(AttributedEvent):
        from_party: str
        to_party: str
        offered_at: datetime
        idempotency_key: str

        @property
        def occurred_at(self) -> datetime:
            return self.offered_at

        def apply(self, aggregate: Any) -> None:
            aggregate.offer = Offer(self.from_party, self.to_party)
            aggregate.outcomes[self.idempotency_key] = ScanOutcome(
                True,
                custodian=aggregate.custodian,
                status=aggregate.status.value,
                offered_to=self.to_party,
            )

    class CustodyHandedOver(AttributedEvent):
        from_party: str
        to_party: str
        status: str
        scanned_at: datetime
        late: bool
        idempotency_key: str

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

        def apply(self, aggregate: Any) -> None:
            aggregate.custodian = self.to_party
            aggregate.status = ShipmentStatus(self.status)
            aggregate.pending = {}
            aggregate.offer = None
            aggregate.note_scan_time(self.scanned_at)
            aggregate.note_handoff_time(self.scanned_at)
            aggregate.handoffs += 1
            if self.idempotency_key:
                aggregate.outcomes[self.idempotency_key] = ScanOutcome(
                    True, late=self.late, custodian=self.to_party, status=self.status
                )

    class ScanMismatchRecorded(AttributedEvent):
        reason_code: str
        explanation: str
        scanned_label: str
        from_party: str
        receiving_party: str
        scanned_at: datetime
        idempotency_key: str
        missing_dins: list[str]

        @property
        def occurred_at(self) -> datetime:
            return self.scanned_at

        def apply(self, aggregate: Any) -> None:
            aggregate.mismatches += 1
            if self.idempotency_key:
                mismatch = Mismatch(self.reason_code, self.explanation, tuple(self.missing_dins))
                aggregate.outcomes[self.idempotency_key] = ScanOutcome(False, mismatch=mismatch)

    class StabilityWindowBreached(AttributedEvent):
        window_ends_at: datetime
        detected_at: datetime
        checkpoint: str

        @property
        def occurred_at(self) -> datetime:
            return self.detected_at

        def apply(self, aggregate: Any) -> None:
            aggregate.window_breached = True

    class TemperatureReadingsRecorded(AttributedEvent):
        device_id: str
        readings: list[dict[str, Any]]

        def apply(self, aggregate: Any) -> None:
            aggregate.reading_times.update(r["measured_at"] for r in self.readings)

    class TemperatureExcursionRecorded(AttributedEvent):
        device_id: str
        condition: str
        started_at: datetime
        ended_at: datetime
        min_c: float
        max_c: float

        def apply(self, aggregate: Any) -> None:
            aggregate.excursions.append(
                Excursion(self.device_id, self.started_at, self.ended_at, self.min_c, self.max_c)
            )

    class Delivered(AttributedEvent):
        from_party: str
        destination_site_id: str
        received_at: datetime
        window_overridden: bool
        override_signature: dict[str, str] | None
        signature_meaning: str
        destination_department: str = ""
        """The department that took it ("": the destination site as a whole)."""
        manifest_dins: tuple[str, ...] = ()
        """The units delivered, published for the wards that learn deliveries (empty on
        deliveries recorded before they were kept here; a list once stored)."""

        @property
        def occurred_at(self) -> datetime:
            return self.received_at

        def apply(self, aggregate: Any) -> None:
            aggregate.custodian = site_party(self.destination_site_id, self.destination_department)
            aggregate.received_at = self.received_at
            aggregate.status = ShipmentStatus.DELIVERED
            aggregate.pending = {}
            aggregate.offer = None

    class ReceiptInspected(AttributedEvent):
        intact: bool
        temperature_log_reviewed: bool
        excursion_count: int
        notes: str
        inspected_at: datetime
        """When it was inspected: the clinical time, as given (default now)."""

        @property
        def occurred_at(self) -> datetime:
            return self.inspected_at

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.RECEIPT_INSPECTED

    class ExceptionRecorded(AttributedEvent):
        kind: str
        custodian: str
        recorded_at: datetime
        """When it was recorded (the server's clock)."""
        occurred_at: datetime | None = None
        """When it happened: the clinical time, as given (default now; None on exceptions
        recorded before it was kept: `recorded_at`)."""

        def apply(self, aggregate: Any) -> None:
            aggregate.status = ShipmentStatus.EXCEPTION
            aggregate.exception_kind = ExceptionKind(self.kind)
            aggregate.offer = None

    def __init__(
        self,
        coi: str,
        manifest: list[str],
        condition: str,
        origin_site_id: str,
        destination_site_id: str,
        shipper_id: str,
        data_logger_id: str,
        custodian: str,
        assigned_courier_id: str,
        window_ends_at: datetime | None,
        created_at: datetime,
        origin_department: str = "",
        destination_department: str = "",
        **_: Any,
    ) -> None:
        self.coi = coi
        self.manifest = list(manifest)
        self.condition = Condition(condition)
        self.origin_site_id = origin_site_id
        self.destination_site_id = destination_site_id
        self.origin_department = origin_department
        self.destination_department = destination_department
        self.shipper_id = shipper_id
        self.data_logger_id = data_logger_id
        self.custodian = custodian
        self.assigned_courier_id = assigned_courier_id
        self.window_ends_at = window_ends_at
        self.created_at = created_at
        """When the origin created (packed) it: the clinical time, as given."""
        self.last_handoff_at: datetime | None = None
        """The clinical time of the latest accepted handoff (the pickup, then relays)."""
        self.received_at: datetime | None = None
        """When the destination received it (the clinical time, as given)."""
        self.status = ShipmentStatus.CREATED
        self.pending: dict[str, list[str]] = {}
        self.offer: Offer | None = (
            Offer(custodian, courier_party(assigned_courier_id)) if assigned_courier_id else None
        )
        """The custodian's pending offer; the origin offers the shipment to the courier it
        names when it creates it."""
        self.outcomes: dict[str, ScanOutcome] = {}
        self.latest_scan_at: datetime | None = None
        self.window_breached = False
        self.reading_times: set[datetime] = set()
        self.excursions: list[Excursion] = []
        self.exception_kind: ExceptionKind | None = None
        self.handoffs = 0
        self.mismatches = 0

    @property
    def shipment_id(self) -> str:
        return str(self.id)

    @property
    def origin_party(self) -> str:
        """`site:<origin>` or `site:<origin>/<department>`."""
        return site_party(self.origin_site_id, self.origin_department)

    @property
    def destination_party(self) -> str:
        """`site:<destination>` or `site:<destination>/<department>`."""
        return site_party(self.destination_site_id, self.destination_department)

    @classmethod
    def create(
        cls, shipment_id: UUID, plan: ShipmentPlan, created_at: datetime, by: Attribution
    ) -> Shipment:
        return cls._create(
            cls.Created,
            id=shipment_id,
            manifest=list(plan.manifest),
            condition=plan.condition.value,
            origin_site_id=plan.origin_site_id,
            destination_site_id=plan.destination_site_id,
            shipper_id=plan.shipper_id,
            data_logger_id=plan.data_logger_id,
            custodian=site_party(plan.origin_site_id, plan.origin_department),
            assigned_courier_id=plan.courier_id,
            window_ends_at=plan.window_ends_at,
            window_rule=plan.window_rule,
            created_at=created_at,
            protocol_rules=plan.protocol_rules,
            origin_department=plan.origin_department,
            destination_department=plan.destination_department,
            **attributed(by, plan.coi),
        )

    def note_scan_time(self, scanned_at: datetime) -> None:
        if self.latest_scan_at is None or scanned_at > self.latest_scan_at:
            self.latest_scan_at = scanned_at

    def note_handoff_time(self, at: datetime) -> None:
        if self.last_handoff_at is None or at > self.last_handoff_at:
            self.last_handoff_at = at

    def check_after_creation(self, at: datetime, field: str) -> None:
        """No scan, offer or handoff before the shipment was created (InvalidInput naming
        `field`)."""
        check_not_before(at, field, self.created_at, "the shipment's creation")

    def check_receipt_time(self, received_at: datetime) -> None:
        """No receipt before the shipment was created or before its last handoff."""
        self.check_after_creation(received_at, "received_at")
        check_not_before(received_at, "received_at", self.last_handoff_at, "its last handoff")

    def is_late(self, scanned_at: datetime) -> bool:
        return self.latest_scan_at is not None and scanned_at < self.latest_scan_at

    def scanned_by(self, party: str) -> list[str]:
        return list(self.pending.get(party, []))

    def parties(self, courier_companies: frozenset[str] = frozenset()) -> Parties:
        """Who the shipment relates to; `courier_companies`: the sites its assigned courier
        works for."""
        return Parties(
            self.origin_site_id,
            self.destination_site_id,
            self.assigned_courier_id,
            self.custodian,
            courier_companies,
            self.origin_department,
            self.destination_department,
        )

    @property
    def offered_to(self) -> str:
        offer = self.offer
        return offer.to_party if offer is not None and offer.from_party == self.custodian else ""

    # courier (or site) scans and handoffs

    def scan(self, attempt: ScanAttempt, known: UnitLookup, by: Attribution) -> ScanOutcome:
        """Accept a scanned unit for the pending handoff, or record why not."""
        if attempt.idempotency_key in self.outcomes:
            return self.outcomes[attempt.idempotency_key]
        self.check_after_creation(attempt.scanned_at, "scanned_at")
        already = self.scanned_by(attempt.receiving_party)
        found = self._custody_problem(attempt) or match_label(
            attempt.label, self.coi, self.manifest, already, known
        )
        if isinstance(found, Mismatch):
            return self._refuse(attempt, found, by)
        self.trigger_event(
            self.UnitScanned,
            din=found,
            from_party=self.custodian,
            receiving_party=attempt.receiving_party,
            scanned_at=attempt.scanned_at,
            late=self.is_late(attempt.scanned_at),
            idempotency_key=attempt.idempotency_key,
            **attributed(by, self.coi),
        )
        return self.outcomes[attempt.idempotency_key]

    def offer_handoff(
        self, attempt: ScanAttempt, parties: Parties, by: Attribution, field: str = "offered_at"
    ) -> ScanOutcome:
        """The custodian (`attempt.from_party`, authenticated) offers the shipment to
        `attempt.receiving_party`, who takes it by scanning every unit; or record why not.
        `field`: what the offer's time is called where it was given."""
        if attempt.idempotency_key in self.outcomes:
            return self.outcomes[attempt.idempotency_key]
        self.check_after_creation(attempt.scanned_at, field)
        offer = self._state_problem() or check_offer(
            parties, attempt.from_party, attempt.receiving_party
        )
        if isinstance(offer, Mismatch):
            return self._refuse(attempt, offer, by)
        self.trigger_event(
            self.HandoffOffered,
            from_party=offer.from_party,
            to_party=offer.to_party,
            offered_at=attempt.scanned_at,
            idempotency_key=attempt.idempotency_key,
            **attributed(by, self.coi),
        )
        return self.outcomes[attempt.idempotency_key]

    def hand_over(self, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        """Pass custody to the receiving party, who scanned every unit, from the custodian
        who offered it to them; or record why not."""
        if attempt.idempotency_key in self.outcomes:
            return self.outcomes[attempt.idempotency_key]
        self.check_after_creation(attempt.scanned_at, "scanned_at")
        giver = self._state_problem() or self._giver(attempt)
        mismatch = (
            giver
            if isinstance(giver, Mismatch)
            else missing_units(self.manifest, self.scanned_by(attempt.receiving_party))
            or self._window_problem(attempt.scanned_at, "handoff", by)
        )
        if mismatch is not None:
            return self._refuse(attempt, mismatch, by)
        from_site = self.custodian == self.origin_party
        status = ShipmentStatus.PICKED_UP if from_site else ShipmentStatus.IN_TRANSIT
        self.trigger_event(
            self.CustodyHandedOver,
            from_party=self.custodian,
            to_party=attempt.receiving_party,
            status=status.value,
            scanned_at=attempt.scanned_at,
            late=self.is_late(attempt.scanned_at),
            idempotency_key=attempt.idempotency_key,
            **attributed(by, self.coi),
        )
        return self.outcomes[attempt.idempotency_key]

    def _state_problem(self) -> Mismatch | None:
        if not self.status.is_moving:
            return Mismatch(WRONG_STATE, f"shipment is {self.status.value}: no handoff allowed")
        return None

    def _custody_problem(self, attempt: ScanAttempt) -> Mismatch | None:
        """Why the receiving party may not scan for a handoff (a claimed giver must be the
        custodian)."""
        problem = self._state_problem() or check_claimed_giver(self.custodian, attempt.from_party)
        if problem is not None:
            return problem
        if attempt.receiving_party == self.custodian:
            return Mismatch(WRONG_STATE, f"{attempt.receiving_party} already holds the shipment")
        return None

    def _giver(self, attempt: ScanAttempt) -> Mismatch | str:
        return giver_of_handoff(
            self.custodian, self.offer, attempt.receiving_party, attempt.from_party
        )

    def _window_problem(self, at: datetime, checkpoint: str, by: Attribution) -> Mismatch | None:
        if self.window_ends_at is None or at <= self.window_ends_at:
            return None
        self._record_breach(at, checkpoint, by)
        return Mismatch(
            WINDOW_BREACHED,
            f"the stability window ended at {self.window_ends_at.isoformat()}: STOP, call the"
            " destination site",
        )

    def _record_breach(self, at: datetime, checkpoint: str, by: Attribution) -> None:
        if self.window_breached or self.window_ends_at is None:
            return
        self.trigger_event(
            self.StabilityWindowBreached,
            window_ends_at=self.window_ends_at,
            detected_at=at,
            checkpoint=checkpoint,
            **attributed(by, self.coi),
        )

    def _refuse(self, attempt: ScanAttempt, mismatch: Mismatch, by: Attribution) -> ScanOutcome:
        self.record_mismatch(attempt, mismatch, by)
        return ScanOutcome(False, mismatch=mismatch)

    def record_mismatch(self, attempt: ScanAttempt, mismatch: Mismatch, by: Attribution) -> None:
        self.trigger_event(
            self.ScanMismatchRecorded,
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            scanned_label=attempt.label,
            from_party=attempt.from_party,
            receiving_party=attempt.receiving_party,
            scanned_at=attempt.scanned_at,
            idempotency_key=attempt.idempotency_key,
            missing_dins=list(mismatch.missing_dins),
            **attributed(by, self.coi),
        )

    def assign_courier(self, courier_id: str, by: Attribution) -> None:
        if not self.status.is_moving:
            raise Refused(f"shipment {self.shipment_id} is {self.status.value}")
        if courier_id != self.assigned_courier_id:
            fields = attributed(by, self.coi)
            self.trigger_event(self.CourierAssigned, courier_id=courier_id, **fields)

    # the destination site

    def receive(
        self,
        attempt: ScanAttempt,
        labels: Sequence[str],
        known: UnitLookup,
        override: WindowOverride | None,
        by: Attribution,
    ) -> Mismatch | None:
        """Delivery: the destination site scanned exactly the manifest (None), or why not;
        `attempt.scanned_at` is when it was received (`received_at`, the clinical time)."""
        self.check_receipt_time(attempt.scanned_at)
        mismatch = self._receipt_problem(attempt, labels, known)
        if mismatch is None and self._past_window(attempt.scanned_at):
            self._record_breach(attempt.scanned_at, "receipt", by)
            if override is None:
                mismatch = Mismatch(
                    WINDOW_BREACHED,
                    f"the stability window ended at {self._window_text()}; accepting the"
                    " receipt needs an override with a reason and an approval e-signature",
                )
        if mismatch is not None:
            self.record_mismatch(attempt, mismatch, by)
            return mismatch
        signed = override if self.window_breached else None
        self.trigger_event(
            self.Delivered,
            from_party=self.custodian,
            destination_site_id=self.destination_site_id,
            destination_department=self.destination_department,
            received_at=attempt.scanned_at,
            manifest_dins=list(self.manifest),
            window_overridden=signed is not None,
            override_signature=signed.signature.as_dict() if signed else None,
            signature_meaning=signed.signature.meaning if signed else "",
            **attributed(by.because(signed.reason) if signed else by, self.coi),
        )
        return None

    def _past_window(self, at: datetime) -> bool:
        if self.window_breached:
            return True
        return self.window_ends_at is not None and at > self.window_ends_at

    def _window_text(self) -> str:
        return self.window_ends_at.isoformat() if self.window_ends_at else "(no window)"

    def _receipt_problem(
        self, attempt: ScanAttempt, labels: Sequence[str], known: UnitLookup
    ) -> Mismatch | None:
        if attempt.receiving_party != self.destination_party:
            return Mismatch(
                WRONG_DESTINATION,
                f"this shipment goes to {self.destination_party.removeprefix(SITE_PREFIX)}, not"
                f" {attempt.receiving_party.removeprefix(SITE_PREFIX)}",
            )
        giver = self._state_problem() or self._giver(attempt)
        if isinstance(giver, Mismatch):
            return giver
        scanned: list[str] = []
        for label in labels:
            found = match_label(label, self.coi, self.manifest, scanned, known)
            if isinstance(found, Mismatch):
                return found
            scanned.append(found)
        return missing_units(self.manifest, scanned)

    def inspect(
        self, intact: bool, log_reviewed: bool, notes: str, at: datetime, by: Attribution
    ) -> None:
        """Inspected at `at` (`inspected_at`, the clinical time): not before the receipt."""
        if self.status is not ShipmentStatus.DELIVERED:
            raise Refused(f"only a delivered shipment can be inspected; it is {self.status.value}")
        check_not_before(at, "inspected_at", self.received_at, "the receipt")
        if not intact:
            raise InvalidInput("a shipment that is not intact is recorded as a 'damaged' exception")
        if not log_reviewed:
            raise InvalidInput("the temperature log must be reviewed before receipt inspection")
        self.trigger_event(
            self.ReceiptInspected,
            intact=intact,
            temperature_log_reviewed=log_reviewed,
            excursion_count=len(self.excursions),
            notes=notes,
            inspected_at=at,
            **attributed(by, self.coi),
        )

    def record_exception(
        self, kind: ExceptionKind, occurred_at: datetime, recorded_at: datetime, by: Attribution
    ) -> None:
        """It happened at `occurred_at` (the clinical time): not before the shipment's
        creation; recorded at `recorded_at` (the server's clock)."""
        if self.status.is_closed:
            raise Refused(f"shipment {self.shipment_id} is already {self.status.value}")
        if not by.reason.strip():
            raise InvalidInput("an exception needs a reason (what happened)")
        self.check_after_creation(occurred_at, "occurred_at")
        self.trigger_event(
            self.ExceptionRecorded,
            kind=kind.value,
            custodian=self.custodian,
            recorded_at=recorded_at,
            occurred_at=occurred_at,
            **attributed(by, self.coi),
        )

    # temperatures

    def record_readings(
        self, readings: Sequence[Reading], rules: ProtocolRules, by: Attribution
    ) -> list[Excursion]:
        """Record the readings not seen before; return the excursions they form (outside the
        rules' range for this shipment's condition)."""
        if self.status is ShipmentStatus.RECEIPT_INSPECTED:
            raise Refused("the temperature log was already reviewed at receipt inspection")
        foreign = {r.device_id for r in readings} - {self.data_logger_id}
        if foreign:
            raise Refused(
                f"readings from {', '.join(sorted(foreign))}; this shipment's data logger is"
                f" {self.data_logger_id}"
            )
        unseen = {r.measured_at: r for r in readings if r.measured_at not in self.reading_times}
        new = sorted(unseen.values(), key=lambda r: r.measured_at)
        if not new:
            return []
        rows = [{"measured_at": r.measured_at, "temperature_c": r.temperature_c} for r in new]
        fields = attributed(by, self.coi)
        self.trigger_event(
            self.TemperatureReadingsRecorded, device_id=self.data_logger_id, readings=rows, **fields
        )
        found = excursions(rules.temperature_range_c(self.condition), new)
        for excursion in found:
            self.trigger_event(
                self.TemperatureExcursionRecorded,
                device_id=excursion.device_id,
                condition=self.condition.value,
                started_at=excursion.started_at,
                ended_at=excursion.ended_at,
                min_c=excursion.min_c,
                max_c=excursion.max_c,
                **fields,
            )
        return found

    @property
    def courier_custodian(self) -> str:
        return self.custodian.removeprefix(COURIER_PREFIX) if self.holder_is_courier else ""

    @property
    def holder_is_courier(self) -> bool:
        return self.custodian.startswith(COURIER_PREFIX)
