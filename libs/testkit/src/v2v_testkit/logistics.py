"""Builders for logistics tests: fixed identifiers, a settable clock, in-memory facts (units
learned from other contexts), which sites couriers work for, the application wired to
in-memory (or given) event stores, the scopes sites read with, and custody steps (a courier
takes a shipment; a holder offers it on)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from v2v_logistics.adapters.courier_shipment_index import EventStoreCourierShipmentIndex
from v2v_logistics.application import LogisticsApplication, NewShipment
from v2v_logistics.domain.shipment import ScanOutcome
from v2v_logistics.domain.values import (
    Department,
    KnownUnit,
    ScanAttempt,
    UnitKind,
    courier_party,
    department_of,
    site_of,
    site_party,
)
from v2v_logistics.ports import LogisticsFacts
from v2v_logistics.unpublished_records import LogisticsUnpublishedRecords
from v2v_platform.attribution import Attribution
from v2v_platform.auth import Role
from v2v_platform.conditions import Condition
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.ids.bindings import DinBindings, DinConflict
from v2v_platform.scope import Scope
from v2v_testkit.clock import ManualClock

SERVICE_SITE = "LOGI-1"
ORIGIN = "HOSP-A"
DESTINATION = "GMP-B"
COI = issue_coi("A1234", 25, 17).value
OTHER_COI = issue_coi("A1234", 25, 18).value
COLLECTION_END = datetime(2025, 6, 1, 10, 0, tzinfo=UTC)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def din(n: int) -> str:
    return str(issue_din("A1234", 25, n))


@dataclass
class Clock(ManualClock):
    now: datetime = COLLECTION_END + timedelta(hours=2)


@dataclass
class InMemoryFacts:
    """A stand-in for the projection of other contexts' events (the `LogisticsFacts` and
    `UnitIdentities` ports)."""

    units: dict[str, KnownUnit] = field(default_factory=dict)
    bindings: dict[str, list[str]] = field(default_factory=dict)
    """Every COI each DIN is bound to (DIN data -> COIs, first first)."""

    def unit(self, din_data: str) -> KnownUnit | None:
        return self.units.get(din_data)

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        return DinBindings(din_data, tuple(self.bindings.get(din_data, ()))).conflict

    def bind(self, unit_din: str, coi: str) -> None:
        """Verified facts bind `unit_din` to `coi` too (with its packaged unit's COI, a second
        COI makes it an identity conflict)."""
        cois = self.bindings.setdefault(unit_din[:13], [])
        unit = self.units.get(unit_din[:13])
        if unit is not None and unit.coi not in cois:
            cois.insert(0, unit.coi)
        if coi not in cois:
            cois.append(coi)

    def package(
        self,
        unit_din: str,
        coi: str = COI,
        condition: Condition = Condition.FRESH_COLD,
        site: str = ORIGIN,
        window_starts_at: datetime = COLLECTION_END,
        kind: UnitKind = UnitKind.APHERESIS,
    ) -> str:
        self.units[unit_din[:13]] = KnownUnit(
            unit_din, coi, kind, condition, window_starts_at, site_party(site)
        )
        return unit_din


@dataclass
class InMemoryCouriers:
    """A stand-in for the courier tokens' roster (the `CourierRoster` port): which sites
    each courier works for."""

    companies: dict[str, set[str]] = field(default_factory=dict)

    def employ(self, courier_id: str, site: str) -> None:
        self.companies.setdefault(courier_id, set()).add(site)

    def companies_of(self, courier_id: str) -> frozenset[str]:
        return frozenset(self.companies.get(courier_id, set()))


def build_app(
    facts: LogisticsFacts | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    env: dict[str, str] | None = None,
    unpublished_env: dict[str, str] | None = None,
    **overrides: Any,
) -> LogisticsApplication:
    """The application at LOGI-1 with its unpublished records; both in memory by default.
    In-memory `facts` answer the unit identities too.
    `app.close()` leaves the unpublished records open: close `app.unpublished` too."""
    unpublished = LogisticsUnpublishedRecords(env=unpublished_env or POPO)
    settings: dict[str, Any] = {
        "site_id": SERVICE_SITE,
        "courier_index": EventStoreCourierShipmentIndex,
        **overrides,
    }
    if clock is not None:
        settings["clock"] = clock
    if isinstance(facts, InMemoryFacts):
        settings.setdefault("identities", facts)
    return LogisticsApplication(env=env or POPO, unpublished=unpublished, facts=facts, **settings)


def site_user(site: str = ORIGIN, role: str = "collection", user: str = "u-nurse") -> Attribution:
    return Attribution(user, f"User {user}", role, site)


def site_scope(site: str = ORIGIN, *roles: Role) -> Scope:
    """How a site reads (its roles decide whether it reads everything: auditors do)."""
    return Scope(site, frozenset(roles or (Role.COLLECTION,)))


def auditor_scope(site: str = "AUDIT-1") -> Scope:
    return Scope(site, frozenset({Role.AUDITOR}))


def courier(courier_id: str = "C-1", site: str = ORIGIN) -> Attribution:
    return Attribution(courier_id, f"Courier {courier_id}", "courier", site)


def new_shipment(
    dins: list[str], condition: Condition = Condition.FRESH_COLD, courier_id: str = "C-1"
) -> NewShipment:
    return NewShipment(dins, condition, DESTINATION, "DEWAR-9", "LOGGER-5", courier_id)


def attempt(
    receiver: str,
    giver: str,
    at: datetime,
    label: str = "",
    key: str | None = None,
) -> ScanAttempt:
    return ScanAttempt(key or str(uuid4()), at, giver, receiver, label)


def acting_as(party: str) -> Attribution:
    """Who acts as `party` (`courier:<ID>` with its token, `site:<ID>` with its certificate,
    `site:<ID>/<department>` with its site's certificate in the department's role)."""
    if party.startswith("courier:"):
        return courier(party.removeprefix("courier:"))
    department = department_of(party)
    if department:
        return site_user(site_of(party), Department(department).role.value)
    return site_user(party.removeprefix("site:"))


def offer(
    app: LogisticsApplication,
    shipment_id: str,
    giver: str,
    to_party: str,
    at: datetime,
    key: str | None = None,
) -> ScanOutcome:
    """The custodian `giver`, authenticated as itself, offers the shipment to `to_party`."""
    return app.offer_handoff(shipment_id, attempt(to_party, giver, at, key=key), acting_as(giver))


def hand_to_courier(
    app: LogisticsApplication,
    shipment_id: str,
    manifest: list[str],
    courier_id: str,
    giver: str,
    at: datetime,
) -> ScanOutcome:
    """The courier scans every unit from `giver`, then confirms the handoff."""
    me = courier_party(courier_id)
    for unit in manifest:
        app.scan(shipment_id, attempt(me, giver, at, unit), courier(courier_id))
    return app.hand_over(shipment_id, attempt(me, giver, at), courier(courier_id))


def stored_events(app: LogisticsApplication) -> list[Any]:
    """Every event the application stored, in notification order."""
    notifications = app.recorder.select_notifications(1, 100_000)
    return [app.mapper.to_domain_event(n) for n in notifications]


def kinds(app: LogisticsApplication) -> list[str]:
    return [type(event).__name__ for event in stored_events(app)]
