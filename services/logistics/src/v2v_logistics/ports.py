"""What the logistics application needs from outside, each with its null object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from v2v_logistics.domain.values import KnownUnit
from v2v_platform.ids.bindings import DinConflict


class LogisticsFacts(Protocol):
    """What logistics knows about units from other contexts' events (its own projection)."""

    def unit(self, din_data: str) -> KnownUnit | None: ...


class NoLogisticsFacts:
    """Knows no unit: every shipment is refused (for processes that only relay)."""

    def unit(self, din_data: str) -> KnownUnit | None:
        return None


class UnitIdentities(Protocol):
    """Whether verified facts bind a DIN to more than one COI (issue 14, I1): a unit in
    conflict may not be shipped, scanned, handed over or received (`identity-conflict`).
    Implemented by the facts projection (`SqlLogisticsFacts`)."""

    def identity_conflict(self, din_data: str) -> DinConflict | None: ...


class NoUnitIdentities:
    """Knows no binding, so no conflict (for processes that only relay)."""

    def identity_conflict(self, din_data: str) -> DinConflict | None:
        return None


class CourierShipmentIndex(Protocol):
    """Which shipments name a courier (assigned or handed to): candidates, re-checked."""

    def shipments_of_courier(self, courier_id: str) -> list[str]: ...


class NoCourierShipmentIndex:
    """Names no shipment: no courier sees a list (for processes that only relay)."""

    def shipments_of_courier(self, courier_id: str) -> list[str]:
        return []


class CourierRoster(Protocol):
    """Which sites each courier works for (the sites their courier tokens were issued for,
    from the logistics site administrator's own records)."""

    def companies_of(self, courier_id: str) -> frozenset[str]: ...


class NoCourierRoster:
    """No courier works for any site: no site acts as a courier company."""

    def companies_of(self, courier_id: str) -> frozenset[str]:
        return frozenset()


CourierShipmentIndexOver = Callable[[Any, Any], CourierShipmentIndex]
"""Builds the index over the application's own event store (its recorder and mapper)."""
