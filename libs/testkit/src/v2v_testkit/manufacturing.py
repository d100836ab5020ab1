"""Manufacturing test support (tests only): fixed identifiers, a settable clock, in-memory
facts (what manufacturing learns from intake's events), callers' scopes, and the application
wired to in-memory (or given) event stores."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.errors import SlotsExhausted
from v2v_manufacturing.domain.slot_booking import SlotBooking, slot_booking_id
from v2v_manufacturing.domain.values import Enrolment, ExpectedUnit
from v2v_manufacturing.ports import ManufacturingFacts
from v2v_manufacturing.unpublished_records import ManufacturingUnpublishedRecords
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import Role
from v2v_platform.conditions import Condition
from v2v_platform.din_allocation import DinBlock, IssuingService, declare_all
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.ids.bindings import DinBindings, DinConflict
from v2v_platform.scope import Scope
from v2v_testkit.clock import ManualClock

GMP = "GMP-B"
OTHER_GMP = "GMP-C"
HOSPITAL = "HOSP-A"
OTHER_HOSPITAL = "HOSP-B"
AUDITOR = "AUDIT-1"
FIN = "W1234"
DAY = "2025-06-02"
COLLECTION_END = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
COI = issue_coi("A1234", 25, 17).value
OTHER_COI = issue_coi("A1234", 25, 18).value
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


DIN_BLOCK = DinBlock.default(FIN, IssuingService(GMP, "manufacturing"))
"""GMP's product DIN block under FIN W1234 (the default: 500000-999999)."""


def declare_din_block(pki_dir: Path, fin: str = FIN, site_id: str = GMP) -> DinBlock:
    """Declare the site's manufacturing's default DIN block under `fin` in the PKI directory
    (what the service needs to start: `v2v_platform.din_allocation`)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    issuer = IssuingService(site_id, "manufacturing")
    block = declare_all(pki_dir, [(fin, issuer)]).block_of(fin, issuer)
    assert block is not None
    return block


def build_app(
    facts: ManufacturingFacts | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    env: dict[str, str] | None = None,
    unpublished_env: dict[str, str] | None = None,
    din_block: DinBlock = DIN_BLOCK,
    **overrides: Any,
) -> ManufacturingApplication:
    """The application at GMP (FIN W1234, product DINs from `din_block`) with its unpublished
    records; both in memory by default.

    `app.close()` leaves the unpublished records open: close `app.unpublished` too when they
    are durable.
    """
    unpublished = ManufacturingUnpublishedRecords(env=unpublished_env or POPO, din_block=din_block)
    settings: dict[str, Any] = {"site_id": GMP, "fin": FIN, **overrides}
    if clock is not None:
        settings["clock"] = clock
    return ManufacturingApplication(
        env=env or POPO, unpublished=unpublished, facts=facts, **settings
    )


def operator(site: str = GMP, role: str = "manufacturing", user: str = "u-op") -> Attribution:
    return Attribution(user, f"Operator {user}", role, site)


def reader(site: str = GMP, role: Role = Role.MANUFACTURING) -> Scope:
    """The scope of a caller at `site` with `role`, as the adapters build it."""
    return Scope(site, frozenset({role}))


AT_GMP = reader()
"""This GMP site itself (it sees every booking and unit of its own)."""


def apheresis_din(n: int) -> str:
    return str(issue_din("A1234", 25, n))


@dataclass
class Clock(ManualClock):
    now: datetime = COLLECTION_END + timedelta(hours=20)


@dataclass
class InMemoryManufacturingFacts:
    """A stand-in for the projection of intake's events (the port, not the thing under test)."""

    units: dict[str, ExpectedUnit] = field(default_factory=dict)
    slots: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    enrolments: dict[str, Enrolment] = field(default_factory=dict)
    bindings: dict[str, list[str]] = field(default_factory=dict)
    """Every COI each DIN is bound to (DIN data -> COIs, first first)."""

    def enrolment(self, coi: str) -> Enrolment | None:
        return self.enrolments.get(coi)

    def packaged_unit(self, din_data: str) -> ExpectedUnit | None:
        return self.units.get(din_data)

    def booked_slot_ids(self, coi: str, manufacturing_site_id: str) -> list[str]:
        return list(self.slots.get((coi, manufacturing_site_id), []))

    def units_for(self, coi: str) -> list[ExpectedUnit]:
        return [unit for unit in self.units.values() if unit.coi == coi]

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        return DinBindings(din_data, tuple(self.bindings.get(din_data, ()))).conflict

    def bind(self, din: str, coi: str) -> None:
        """Verified facts bind `din` to `coi` too (a second COI makes it an identity
        conflict: the packaged unit, if any, names it among its other COIs)."""
        cois = self.bindings.setdefault(din[:13], [])
        if coi not in cois:
            cois.append(coi)
        unit = self.units.get(din[:13])
        if unit is not None:
            others = tuple(c for c in cois if c != unit.coi)
            self.units[din[:13]] = replace(unit, other_cois=others)

    def package(
        self,
        din: str,
        coi: str = COI,
        condition: Condition = Condition.FRESH_COLD,
        site: str = GMP,
        window_starts_at: datetime = COLLECTION_END,
    ) -> None:
        self.units[din[:13]] = ExpectedUnit(din, coi, condition, window_starts_at, site)
        self.bind(din, coi)

    def slot_booked(self, coi: str, site: str, slot_id: str) -> None:
        self.slots.setdefault((coi, site), []).append(slot_id)

    def enrolled(
        self, coi: str = COI, site: str = HOSPITAL, treating_site: str | None = None
    ) -> None:
        """Intake at `site` enrolled the patient of `coi` (treated there unless said)."""
        self.enrolments[coi] = Enrolment(coi, site, treating_site or site)


def book(app: ManufacturingApplication, facts: InMemoryManufacturingFacts, coi: str = COI) -> str:
    """Open the day (if needed), book a slot for `coi` at GMP (enrolled at HOSPITAL unless
    the facts know it already) and tell the facts about it."""
    if facts.enrolment(coi) is None:
        facts.enrolled(coi)
    if app.slot_calendar(GMP, DAY, AT_GMP).capacity == 0:
        app.set_slot_capacity(GMP, DAY, 5, operator())
    slot_id = app.book_slot(coi, GMP, DAY, operator(HOSPITAL, "collection")).slot_id
    facts.slot_booked(coi, GMP, slot_id)
    return slot_id


def receive(
    app: ManufacturingApplication,
    facts: InMemoryManufacturingFacts,
    n: int,
    coi: str = COI,
    condition: Condition = Condition.FRESH_COLD,
) -> str:
    """Package unit `n` for `coi`, make sure a slot is booked, and receive it at GMP."""
    din = apheresis_din(n)
    facts.package(din, coi, condition)
    if not facts.booked_slot_ids(coi, GMP):
        book(app, facts, coi)
    app.receive_unit(din, coi, operator())
    return din


def check_concurrent_bookings_never_overbook(
    app: ManufacturingApplication,
    facts: InMemoryManufacturingFacts,
    day: str = DAY,
    requests: int = 20,
    capacity: int = 5,
) -> None:
    """`requests` collection requests (one COI each, enrolled at HOSPITAL) race for the
    `capacity` slots of a day: exactly `capacity` win, the others are told the day is full,
    and the internal calendar and the published bookings agree. Run on memory (unit) and on
    PostgreSQL (integration)."""
    app.set_slot_capacity(GMP, day, capacity, operator())
    cois = [issue_coi("A1234", 25, 100 + n).value for n in range(requests)]
    for coi in cois:
        facts.enrolled(coi)
    collector = operator(HOSPITAL, "collection", "u-nurse")
    start = threading.Barrier(requests)
    booked: dict[str, str] = {}
    exhausted: list[SlotsExhausted] = []
    lock = threading.Lock()

    def book(coi: str) -> None:
        start.wait()
        try:
            slot_id = app.book_slot(coi, GMP, day, collector).slot_id
        except SlotsExhausted as error:
            with lock:
                exhausted.append(error)
        else:
            with lock:
                booked[slot_id] = coi

    threads = [threading.Thread(target=book, args=(coi,)) for coi in cois]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(booked) == capacity and len(exhausted) == requests - capacity
    view = app.slot_calendar(GMP, day, AT_GMP)
    assert view.booked == capacity and not view.unrecorded
    assert {b.slot_id: b.coi for b in view.bookings} == booked
    for slot_id, coi in booked.items():
        booking: SlotBooking = app.repository.get(slot_booking_id(slot_id))
        assert (booking.coi, booking.is_booked) == (coi, True)
