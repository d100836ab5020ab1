"""What the infusion application needs from outside, each with its null object.

`InfusionFacts`: what infusion knows from other contexts' Kafka events, read from its own
projection (`adapters.facts_projection`): manufacturing's product units, release's decisions
and post-release failures, intake's treating sites, logistics' deliveries of units to sites,
and the infusions every treating site published (infusion's own topic). Infusion never calls
those services or reads their databases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from v2v_infusion.domain.values import FailureAlert, KnownInfusion, KnownProduct, ReleaseState


class InfusionFacts(Protocol):
    def product_unit(self, din_data: str) -> KnownProduct | None: ...

    def release_of(self, batch_id: str) -> ReleaseState: ...

    def failures_of_batch(self, batch_id: str) -> list[FailureAlert]: ...

    def failure(self, failure_id: str) -> FailureAlert | None: ...

    def failures(self) -> list[FailureAlert]:
        """Every post-release failure known, oldest first."""
        ...

    def treating_site_of(self, coi: str) -> str | None: ...

    def infusions_of(self, din_data: str) -> list[KnownInfusion]:
        """The unit's infusions at any site (one, unless something went badly wrong)."""
        ...

    def delivered_at(self, din_data: str, site_id: str) -> datetime | None:
        """When logistics first delivered the unit to `site_id` (the receipt's clinical time);
        None when no delivery of it there is known (an in-house ward may receive a unit no
        shipment brought)."""
        ...


class NoInfusionFacts:
    """Knows nothing: every receipt is refused (for processes that only relay)."""

    def product_unit(self, din_data: str) -> KnownProduct | None:
        return None

    def release_of(self, batch_id: str) -> ReleaseState:
        return ReleaseState()

    def failures_of_batch(self, batch_id: str) -> list[FailureAlert]:
        return []

    def failure(self, failure_id: str) -> FailureAlert | None:
        return None

    def failures(self) -> list[FailureAlert]:
        return []

    def treating_site_of(self, coi: str) -> str | None:
        return None

    def infusions_of(self, din_data: str) -> list[KnownInfusion]:
        return []

    def delivered_at(self, din_data: str, site_id: str) -> datetime | None:
        return None
