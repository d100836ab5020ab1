"""Plain values the application returns to its adapters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.bedside import infuse_by
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import FailureAlert, KnownProduct, ReleaseState

EXPECTED = "expected"


@dataclass(frozen=True)
class AdverseEventView:
    kind: str
    grade: int
    onset_at: datetime
    notes: str


@dataclass(frozen=True)
class ProductUnitView:
    din: str
    coi: str
    batch_id: str
    condition: str
    # expected, received, stored, thawing, first-scan-recorded, verified, infused
    status: str
    # none, provisional, final, oos-accepted, rejected
    release_status: str
    released_at: datetime | None
    infuse_by: datetime | None
    storage_location: str
    unacknowledged_failure_ids: list[str]
    administered_at: datetime | None
    adverse_events: list[AdverseEventView]

    @classmethod
    def of(
        cls,
        unit: ProductAtSite,
        release: ReleaseState,
        unacknowledged: Sequence[str],
        fresh_window: timedelta,
    ) -> ProductUnitView:
        deadline = unit.verified_infuse_by or infuse_by(unit, release, fresh_window)
        return cls(
            unit.din,
            unit.coi,
            unit.batch_id,
            unit.condition.value,
            unit.status.value,
            release.status.value,
            release.released_at,
            deadline,
            unit.storage_location,
            list(unacknowledged),
            unit.administered_at,
            [AdverseEventView(e.kind, e.grade, e.onset_at, e.notes) for e in unit.adverse_events],
        )

    @classmethod
    def expected(
        cls, product: KnownProduct, release: ReleaseState, unacknowledged: Sequence[str]
    ) -> ProductUnitView:
        """A product unit known from manufacturing, not (yet) received at this site."""
        return cls(
            product.din,
            product.coi,
            product.batch_id,
            product.condition.value,
            EXPECTED,
            release.status.value,
            release.released_at,
            None,
            "",
            list(unacknowledged),
            None,
            [],
        )


@dataclass(frozen=True)
class ScanView:
    # "first-scan-recorded" or "verified"
    outcome: str
    unit: ProductUnitView


@dataclass(frozen=True)
class AlertView:
    failure_id: str
    coi: str
    batch_id: str
    product_dins: list[str]
    test: str
    value: str
    criterion: str
    result_at: datetime
    raised_at: datetime
    acknowledged: bool
    decision: str
    # the physician's signature manifestation, shown with every acknowledged alert
    physician_signature: dict[str, str] | None

    @classmethod
    def of(cls, alert: FailureAlert, acknowledgement: FailureAcknowledgement | None) -> AlertView:
        return cls(
            alert.failure_id,
            alert.coi,
            alert.batch_id,
            list(alert.product_dins),
            alert.test,
            alert.value,
            alert.criterion,
            alert.result_at,
            alert.raised_at,
            acknowledgement is not None,
            acknowledgement.decision if acknowledgement else "",
            dict(acknowledgement.physician_signature) if acknowledgement else None,
        )
