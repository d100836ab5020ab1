"""The logistics application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s and return the
plain values of `views`. Refused scans, handoffs and receipts are saved (as mismatch events on
the shipment's chain) BEFORE `ScanRefused` is raised. Every change is saved under optimistic
concurrency and retried from a fresh read when another change won the race, so a scan key
sent twice at once is still applied once.

This application's notification log is the outbox: each `Shipment` belongs to ONE chain of
identity (all its units share one COI) and each of its events carries that valid COI, the
Kafka key. Which shipments each unit was listed on lives in the internal `LogisticsRegisters`.
Events are authored by this service's site (which signs them); the acting user, their role
and, in the payload, the acting site say who did it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from v2v_logistics.domain.matching import OTHER_COI, UNKNOWN_UNIT, WRONG_CUSTODIAN, ScanRefused
from v2v_logistics.domain.shipment import ScanOutcome, Shipment, ShipmentPlan
from v2v_logistics.domain.values import (
    ExceptionKind,
    KnownUnit,
    Reading,
    ScanAttempt,
    ShipmentStatus,
    StabilityRules,
    courier_party,
    parse_courier_id,
    parse_party,
    parse_site,
    require_text,
    site_party,
)
from v2v_logistics.registers import LogisticsRegisters
from v2v_logistics.shipment_index import ShipmentIndex
from v2v_logistics.views import CourierShipmentView, ExcursionView, ReadingsView, ShipmentView
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Din, InvalidIdentifier
from v2v_platform.traced_application import TracedApplication

T = TypeVar("T")


class UnitFacts(Protocol):
    """What logistics knows about units from other contexts' events (its own projection)."""

    def unit(self, din_data: str) -> KnownUnit | None: ...


class NoUnitFacts:
    """Knows no unit: every shipment is refused (for processes that only relay)."""

    def unit(self, din_data: str) -> KnownUnit | None:
        return None


class NotWired(RuntimeError):
    """The application was built without its registers (e.g. by the relay): it cannot command."""


@dataclass(frozen=True)
class NewShipment:
    manifest: Sequence[str]
    condition: Condition
    destination_site_id: str
    shipper_id: str
    data_logger_id: str
    courier_id: str = ""


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_din(text: str) -> Din:
    try:
        return Din.parse(text.strip())
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


def parse_shipment_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise NotFound(f"no shipment {text!r}") from None


class LogisticsApplication(TracedApplication):
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        registers: LogisticsRegisters | None = None,
        site_id: str = "",
        unit_facts: UnitFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        rules: StabilityRules | None = None,
        max_attempts: int = 200,
    ) -> None:
        super().__init__(env)
        self._registers = registers
        self.site_id = site_id
        self.unit_facts: UnitFacts = unit_facts or NoUnitFacts()
        self.clock = clock
        self.rules = rules or StabilityRules()
        self.max_attempts = max_attempts
        self.index = ShipmentIndex(self.recorder, self.mapper)

    @property
    def registers(self) -> LogisticsRegisters:
        if self._registers is None:
            raise NotWired("LogisticsApplication built without its registers application")
        return self._registers

    # shipments

    def create_shipment(self, request: NewShipment, by: Attribution) -> ShipmentView:
        if not request.manifest:
            raise InvalidInput("a shipment needs at least one unit on its manifest")
        dins = [parse_din(text) for text in request.manifest]
        if len({din.data for din in dins}) != len(dins):
            raise InvalidInput("a unit is listed twice on the manifest")
        destination = parse_site(request.destination_site_id, "destination site")
        if destination == by.site_id:
            raise InvalidInput("the destination is the origin site")
        if request.courier_id:
            parse_courier_id(request.courier_id)

        def attempt() -> ShipmentView:
            units = [self._shippable(din, by.site_id) for din in dins]
            plan = self._plan(units, request, by.site_id, destination)
            shipment = Shipment.create(uuid4(), plan, self.clock(), self._authored(by))
            self.registers.list_units([u.din_data for u in units], shipment.shipment_id, by)
            self.save(shipment)
            return ShipmentView.of(shipment)

        return self._retrying(attempt)

    def _shippable(self, din: Din, origin_site_id: str) -> KnownUnit:
        unit = self.unit_facts.unit(din.data)
        if unit is None:
            raise ScanRefusedAtCreation(UNKNOWN_UNIT, f"no unit with DIN {din} is known here")
        custodian = self.unit_custodian(unit)
        if custodian != site_party(origin_site_id):
            raise ScanRefusedAtCreation(
                WRONG_CUSTODIAN, f"unit {din} is in the custody of {custodian}, not this site"
            )
        return unit

    def _plan(
        self, units: Sequence[KnownUnit], request: NewShipment, origin: str, destination: str
    ) -> ShipmentPlan:
        cois = sorted({unit.coi for unit in units})
        if len(cois) > 1:
            raise ScanRefusedAtCreation(
                OTHER_COI, f"a shipment carries ONE COI; the units belong to {', '.join(cois)}"
            )
        mixed = [u.din for u in units if u.condition is not request.condition]
        if mixed:
            raise Refused(
                f"unit(s) {', '.join(mixed)} are not held {request.condition.value}; a shipment"
                " has one condition"
            )
        ends = [(self.rules.window_end(u), self.rules.rule_name(u)) for u in units]
        timed = sorted((end, rule) for end, rule in ends if end is not None)
        window_end, rule = timed[0] if timed else (None, self.rules.rule_name(units[0]))
        return ShipmentPlan(
            coi=cois[0],
            manifest=tuple(u.din for u in units),
            condition=request.condition,
            origin_site_id=origin,
            destination_site_id=destination,
            shipper_id=require_text("shipper/dewar id", request.shipper_id),
            data_logger_id=require_text("data-logger id", request.data_logger_id),
            courier_id=request.courier_id,
            window_ends_at=window_end,
            window_rule=rule,
        )

    def unit_custodian(self, unit: KnownUnit) -> str:
        """Who holds the unit now: an open shipment's custodian, else the last receiver."""
        custodian = unit.first_custodian
        for shipment_id in self.registers.shipments_of(unit.din_data):
            shipment = self._find(UUID(shipment_id))
            if shipment is None:
                continue  # listed, but its shipment was never saved
            if shipment.status.is_moving:
                return f"shipment:{shipment.shipment_id}"
            if shipment.status in (ShipmentStatus.DELIVERED, ShipmentStatus.RECEIPT_INSPECTED):
                custodian = site_party(shipment.destination_site_id)
            else:
                custodian = shipment.custodian
        return custodian

    def assign_courier(self, shipment_id: str, courier_id: str, by: Attribution) -> ShipmentView:
        parse_courier_id(courier_id)

        def change(shipment: Shipment) -> None:
            self._check_party_site(shipment, by, "assign a courier to")
            shipment.assign_courier(courier_id, self._authored(by))

        return self._change(shipment_id, change)

    # scans and handoffs (couriers over HTTP, sites over gRPC)

    def scan(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        self._check_parties(attempt)
        return self._scan_or_hand_over(
            shipment_id, lambda s: s.scan(attempt, self._known, self._authored(by))
        )

    def hand_over(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        self._check_parties(attempt)
        return self._scan_or_hand_over(
            shipment_id, lambda s: s.hand_over(attempt, self._authored(by))
        )

    def _scan_or_hand_over(
        self, shipment_id: str, act: Callable[[Shipment], ScanOutcome]
    ) -> ScanOutcome:
        def attempt() -> ScanOutcome:
            shipment = self._shipment(shipment_id)
            outcome = act(shipment)
            self.save(shipment)
            return outcome

        outcome = self._retrying(attempt)
        if outcome.mismatch is not None:
            raise ScanRefused(outcome.mismatch)
        return outcome

    @staticmethod
    def _check_parties(attempt: ScanAttempt) -> None:
        parse_party(attempt.from_party)
        parse_party(attempt.receiving_party)

    # the destination site

    def receive_shipment(
        self,
        shipment_id: str,
        labels: Sequence[str],
        from_party: str,
        override: WindowOverride | None,
        by: Attribution,
        idempotency_key: str = "",
    ) -> ShipmentView:
        attempt = ScanAttempt(
            idempotency_key or f"receipt:{uuid4()}",
            self.clock(),
            parse_party(from_party),
            site_party(by.site_id),
            " ".join(labels),
        )

        def act() -> tuple[ShipmentView, Any]:
            shipment = self._shipment(shipment_id)
            mismatch = shipment.receive(attempt, labels, self._known, override, self._authored(by))
            self.save(shipment)
            return ShipmentView.of(shipment), mismatch

        view, mismatch = self._retrying(act)
        if mismatch is not None:
            raise ScanRefused(mismatch)
        return view

    def inspect_receipt(
        self, shipment_id: str, intact: bool, log_reviewed: bool, notes: str, by: Attribution
    ) -> ShipmentView:
        def change(shipment: Shipment) -> None:
            if by.site_id != shipment.destination_site_id:
                raise Forbidden(f"only {shipment.destination_site_id} inspects this receipt")
            shipment.inspect(intact, log_reviewed, notes, self.clock(), self._authored(by))

        return self._change(shipment_id, change)

    def record_exception(
        self, shipment_id: str, kind: ExceptionKind, by: Attribution
    ) -> ShipmentView:
        def change(shipment: Shipment) -> None:
            self._check_party_site(shipment, by, "record an exception of")
            shipment.record_exception(kind, self.clock(), self._authored(by))

        return self._change(shipment_id, change)

    # temperatures

    def upload_readings(
        self, shipment_id: str, readings: Sequence[Reading], by: Attribution
    ) -> ReadingsView:
        if not readings:
            raise InvalidInput("a batch of readings needs at least one reading")

        def attempt() -> ReadingsView:
            shipment = self._shipment(shipment_id)
            before = len(shipment.reading_times)
            found = shipment.record_readings(readings, self._authored(by))
            self.save(shipment)
            recorded = len(shipment.reading_times) - before
            return ReadingsView(recorded, [ExcursionView.of(e) for e in found])

        return self._retrying(attempt)

    # queries

    def shipment(self, shipment_id: str) -> ShipmentView:
        return ShipmentView.of(self._shipment(shipment_id))

    def courier_shipments(self, courier_id: str) -> list[CourierShipmentView]:
        """Shipments assigned to (or held by) the courier, not yet delivered."""
        party = courier_party(courier_id)
        found = []
        for shipment_id in self.index.shipments_of_courier(courier_id):
            shipment = self._find(UUID(shipment_id))
            if shipment is None or not shipment.status.is_moving:
                continue
            if shipment.assigned_courier_id == courier_id or shipment.custodian == party:
                view = ShipmentView.of(shipment)
                found.append(CourierShipmentView(view, shipment.scanned_by(party)))
        return found

    def courier_shipment(self, shipment_id: str, courier_id: str) -> CourierShipmentView:
        shipment = self._shipment(shipment_id)
        return CourierShipmentView(
            ShipmentView.of(shipment), shipment.scanned_by(courier_party(courier_id))
        )

    # helpers

    def _known(self, din_data: str) -> KnownUnit | None:
        return self.unit_facts.unit(din_data)

    def _check_party_site(self, shipment: Shipment, by: Attribution, what: str) -> None:
        if by.site_id not in (shipment.origin_site_id, shipment.destination_site_id):
            raise Forbidden(
                f"only {shipment.origin_site_id} or {shipment.destination_site_id} may {what}"
                " this shipment"
            )

    def _authored(self, by: Attribution) -> Attribution:
        """`by`, as recorded (and signed) by this site: the envelope's site is the author."""
        return replace(by, site_id=self.site_id) if self.site_id else by

    def _change(self, shipment_id: str, change: Callable[[Shipment], None]) -> ShipmentView:
        def attempt() -> ShipmentView:
            shipment = self._shipment(shipment_id)
            change(shipment)
            self.save(shipment)
            return ShipmentView.of(shipment)

        return self._retrying(attempt)

    def _shipment(self, shipment_id: str) -> Shipment:
        shipment = self._find(parse_shipment_id(shipment_id))
        if shipment is None:
            raise NotFound(f"no shipment {shipment_id}")
        return shipment

    def _find(self, shipment_id: UUID) -> Shipment | None:
        try:
            aggregate: Any = self.repository.get(shipment_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, Shipment):
            return None
        return aggregate

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("too many concurrent changes; try again")


class ScanRefusedAtCreation(Refused):
    """A shipment was refused because of one of its units (nothing was recorded: no chain yet)."""

    def __init__(self, reason_code: str, explanation: str) -> None:
        super().__init__(explanation)
        self.reason_code = reason_code
