"""The logistics application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution` (or, to read, the caller's `Scope`),
raise `DomainError`s and return the plain values of `views`. Refused scans, handoffs and
receipts are saved (as mismatch events on the shipment's chain) BEFORE `ScanRefused` is
raised; so are those refused because a unit of the shipment is bound to two COIs
(`identity-conflict`, from `UnitIdentities`), which a new shipment refuses outright. Every
change is saved under optimistic concurrency and retried from a fresh read when another change
won the race, so a scan key sent twice at once is still applied once.

This application's notification log is the outbox: each `Shipment` belongs to ONE chain of
identity (all its units share one COI) and each of its events carries that valid COI, the
Kafka key. Which shipments each unit was listed on lives in `LogisticsUnpublishedRecords`.
Events are authored by this service's site (which signs them); the acting user, their role
and, in the payload, the acting site say who did it. Logistics records for the consortium's
sites, so a command's caller is checked against the shipment's parties (`domain.parties`:
origin, destination, assigned courier or its company, custodian), not against this service's
site: to anyone else a shipment does not exist (NotFound, nothing recorded).

Each group of use cases is a class in a sibling module; the commands below delegate to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from v2v_logistics.application.handoffs import Handoffs
from v2v_logistics.application.queries import ShipmentQueries
from v2v_logistics.application.receipt import Receipt
from v2v_logistics.application.shipments import (
    NewShipment,
    ScanRefusedAtCreation,
    Shipments,
    UnitNotFound,
)
from v2v_logistics.application.temperatures import Temperatures
from v2v_logistics.domain.matching import Mismatch
from v2v_logistics.domain.parties import Caller, Parties, acting_problem, party_of
from v2v_logistics.domain.shipment import ScanOutcome, Shipment
from v2v_logistics.domain.values import (
    ExceptionKind,
    Reading,
    ScanAttempt,
    parse_department,
    site_party,
)
from v2v_logistics.ports import (
    CourierRoster,
    CourierShipmentIndex,
    CourierShipmentIndexOver,
    LogisticsFacts,
    NoCourierRoster,
    NoCourierShipmentIndex,
    NoLogisticsFacts,
    NoUnitIdentities,
    UnitIdentities,
)
from v2v_logistics.unpublished_records import LogisticsUnpublishedRecords
from v2v_logistics.views import CourierShipmentView, ReadingsView, ShipmentView
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.auth.identity import Role
from v2v_platform.errors import DomainError, Forbidden, NotFound
from v2v_platform.limits import MAX_ID_CHARS, echo
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules
from v2v_platform.scope import Scope
from v2v_platform.service_application import CLOCK_SKEW, MAX_ATTEMPTS, ServiceApplication, utc_now

__all__ = ["LogisticsApplication", "NewShipment", "ScanRefusedAtCreation", "UnitNotFound"]


class LogisticsApplication(ServiceApplication[LogisticsUnpublishedRecords]):
    context = "logistics"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        unpublished: LogisticsUnpublishedRecords | None = None,
        facts: LogisticsFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        rules: ProtocolRules = DEFAULT_RULES,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
        courier_index: CourierShipmentIndexOver | None = None,
        couriers: CourierRoster | None = None,
        identities: UnitIdentities | None = None,
    ) -> None:
        super().__init__(
            env,
            site_id=site_id,
            unpublished=unpublished,
            clock=clock,
            max_attempts=max_attempts,
            clock_skew=clock_skew,
        )
        self.facts: LogisticsFacts = facts or NoLogisticsFacts()
        self.identities: UnitIdentities = identities or NoUnitIdentities()
        self.rules = rules
        self.couriers: CourierRoster = couriers or NoCourierRoster()
        self.courier_index: CourierShipmentIndex = (
            courier_index(self.recorder, self.mapper) if courier_index else NoCourierShipmentIndex()
        )
        self.shipments = Shipments(self)
        self.handoffs = Handoffs(self)
        self.receipt = Receipt(self)
        self.temperatures = Temperatures(self)
        self.queries = ShipmentQueries(self)

    # shipments

    def create_shipment(self, request: NewShipment, by: Attribution) -> ShipmentView:
        return self.shipments.create(request, by)

    def assign_courier(
        self, shipment_id: str, courier_id: str, by: Attribution, department: str = ""
    ) -> ShipmentView:
        return self.shipments.assign_courier(shipment_id, courier_id, by, department)

    # scans and handoffs (couriers over HTTP, sites over gRPC)

    def scan(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        return self.handoffs.scan(shipment_id, attempt, by)

    def hand_over(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        return self.handoffs.hand_over(shipment_id, attempt, by)

    def offer_handoff(
        self, shipment_id: str, attempt: ScanAttempt, by: Attribution, field: str = "scanned_at"
    ) -> ScanOutcome:
        """The custodian (`attempt.from_party`, as authenticated) offers the shipment to
        `attempt.receiving_party`; `field` names the offer's time where it was given."""
        return self.handoffs.offer(shipment_id, attempt, by, field)

    # the destination site

    def receive_shipment(
        self,
        shipment_id: str,
        labels: Sequence[str],
        from_party: str,
        override: WindowOverride | None,
        by: Attribution,
        idempotency_key: str = "",
        department: str = "",
        received_at: datetime | None = None,
    ) -> ShipmentView:
        """The destination site (or its `department`, when the shipment goes to it) takes the
        shipment, at `received_at` (the clinical time; None: now)."""
        return self.receipt.receive(
            shipment_id, labels, from_party, override, by, idempotency_key, department, received_at
        )

    def inspect_receipt(
        self,
        shipment_id: str,
        intact: bool,
        log_reviewed: bool,
        notes: str,
        by: Attribution,
        inspected_at: datetime | None = None,
    ) -> ShipmentView:
        """The destination inspects the receipt at `inspected_at` (clinical; None: now)."""
        return self.receipt.inspect(shipment_id, intact, log_reviewed, notes, by, inspected_at)

    def record_exception(
        self,
        shipment_id: str,
        kind: ExceptionKind,
        by: Attribution,
        occurred_at: datetime | None = None,
    ) -> ShipmentView:
        """A party site records what happened at `occurred_at` (clinical; None: now)."""
        return self.receipt.record_exception(shipment_id, kind, by, occurred_at)

    # temperatures

    def upload_readings(
        self, shipment_id: str, readings: Sequence[Reading], by: Attribution
    ) -> ReadingsView:
        return self.temperatures.upload(shipment_id, readings, by)

    # queries

    def shipment(self, shipment_id: str, scope: Scope) -> ShipmentView:
        return self.queries.shipment(shipment_id, scope)

    def courier_shipments(self, courier_id: str) -> list[CourierShipmentView]:
        return self.queries.courier_shipments(courier_id)

    def courier_shipment(self, shipment_id: str, courier_id: str) -> CourierShipmentView:
        """The shipment as its courier sees it; NotFound to any other courier."""
        return self.queries.courier_shipment(shipment_id, courier_id)

    # shared by the use cases

    def load(self, shipment_id: str) -> Shipment:
        """The shipment; NotFound when there is none with this id."""
        return self.get(Shipment, parse_shipment_id(shipment_id), "shipment")

    def visible(self, shipment_id: str, scope: Scope) -> Shipment:
        """The shipment, when `scope` reads everything or is a party to it; NotFound, exactly
        as if absent, otherwise."""
        caller = Caller.site(scope.site_id, courier_role=scope.has(Role.COURIER))
        return self.related(shipment_id, caller, reads_all=scope.sees_everything)

    def related(self, shipment_id: str, caller: Caller, reads_all: bool = False) -> Shipment:
        """The shipment, when `caller` is one of its parties; NotFound, exactly as if absent,
        otherwise (a stranger's call is never recorded)."""
        shipment = self.find(Shipment, parse_shipment_id(shipment_id))
        if shipment is None or not (reads_all or self.is_party(shipment, caller)):
            raise NotFound(f"no shipment {shipment_id} is visible to {caller.party}")
        return shipment

    def is_party(self, shipment: Shipment, caller: Caller) -> bool:
        return not isinstance(party_of(self.parties_of(shipment), caller), Mismatch)

    def parties_of(self, shipment: Shipment) -> Parties:
        courier = shipment.assigned_courier_id
        return shipment.parties(self.couriers.companies_of(courier) if courier else frozenset())

    def identity_problem(self, shipment: Shipment) -> Mismatch | None:
        """Why no act on the shipment may go on: a unit on its manifest whose DIN verified
        facts bind to more than one COI (`identity-conflict`, issue 14, I1); None otherwise."""
        for entry in shipment.manifest:
            conflict = self.identities.identity_conflict(entry[:13])
            if conflict is not None:
                return Mismatch(conflict.reason_code, conflict.explanation)
        return None

    def shipment_coi(self, shipment_id: str) -> str:
        """The shipment's COI, "" when there is none (for the access log only)."""
        try:
            shipment = self.find(Shipment, parse_shipment_id(shipment_id))
        except DomainError:  # a malformed id names no shipment
            return ""
        return shipment.coi if shipment else ""

    def change(
        self, shipment_id: str, caller: Caller, change: Callable[[Shipment], None]
    ) -> ShipmentView:
        """Apply `change` to the shipment, when `caller` is one of its parties."""

        def attempt() -> ShipmentView:
            shipment = self.related(shipment_id, caller)
            change(shipment)
            self.save(shipment)
            return ShipmentView.of(shipment)

        return self.retrying(attempt)

    @staticmethod
    def acting_party(by: Attribution, department: str = "") -> str:
        """The party a site acts as: `site:<ID>`, or `site:<ID>/<department>` when it acts for
        one of its departments, in the role that department stands for (Forbidden otherwise)."""
        party = site_party(by.site_id, parse_department(department))
        problem = acting_problem(party, by.site_id, by.role)
        if problem is not None:
            raise Forbidden(problem)
        return party

    @staticmethod
    def site_caller(by: Attribution) -> Caller:
        """A site calling with its certificate or site token (in its acting role)."""
        return Caller.site(by.site_id, courier_role=by.role == Role.COURIER.value)

    @staticmethod
    def check_party_site(shipment: Shipment, by: Attribution, what: str) -> None:
        if by.site_id not in (shipment.origin_site_id, shipment.destination_site_id):
            raise Forbidden(
                f"only {shipment.origin_site_id} or {shipment.destination_site_id} may {what}"
                " this shipment"
            )


def parse_shipment_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no shipment {echo(text, MAX_ID_CHARS)!r}") from None
