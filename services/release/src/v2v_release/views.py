"""Plain values the application returns to its adapters.

Every decision is shown with its signature's full manifestation (printed name, UTC time,
meaning and the hash of the signed record): never a signature without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v_platform.conditions import Condition
from v2v_release.domain.batch_release import BatchRelease
from v2v_release.domain.specification import ReleaseSpecification
from v2v_release.domain.values import BatchFact, RecordedResult, ReleaseStatus


@dataclass(frozen=True)
class RecordedResultView:
    result_id: str
    passed: bool
    criterion: str
    pending_tests: list[str]
    post_release_failure_id: str

    @classmethod
    def of(
        cls, result: RecordedResult, pending_tests: list[str], failure_id: str
    ) -> RecordedResultView:
        return cls(result.result_id, result.passed, result.criterion, pending_tests, failure_id)


@dataclass(frozen=True)
class QcResultView:
    result_id: str
    test: str
    method: str
    value: str
    unit: str
    result_at: datetime
    analyst: dict[str, str]
    passed: bool
    criterion: str
    corrected_by_result_id: str

    @classmethod
    def of(cls, result: RecordedResult) -> QcResultView:
        return cls(
            result.result_id,
            result.test,
            result.method,
            result.value,
            result.unit,
            result.result_at,
            result.analyst.as_dict(),
            result.passed,
            result.criterion,
            result.corrected_by_result_id,
        )


@dataclass(frozen=True)
class DecisionView:
    decision: str
    decided_at: datetime
    reason: str
    signature: dict[str, str]


@dataclass(frozen=True)
class BatchReleaseView:
    batch_id: str
    coi: str
    manufacturing_site_id: str
    product_dins: list[str]
    condition: Condition | None
    spec_version: str
    status: str
    results: list[QcResultView]
    pending_tests: list[str]
    failed_tests: list[str]
    decisions: list[DecisionView]
    post_release_failure_ids: list[str]

    @classmethod
    def of(cls, release: BatchRelease, fact: BatchFact) -> BatchReleaseView:
        """The record; product units and condition as manufacturing reported them when the
        record does not know them yet (results recorded before the harvest)."""
        return cls(
            release.batch_id,
            release.coi,
            release.manufacturing_site_id,
            list(release.product_dins or fact.product_dins),
            release.condition or fact.hold_condition,
            release.spec_version,
            release.status.value,
            [QcResultView.of(r) for r in release.results.values()],
            release.pending_tests,
            release.failed_tests,
            [
                DecisionView(d.decision.value, d.decided_at, d.reason, dict(d.signature))
                for d in release.decisions
            ],
            list(release.post_release_failure_ids),
        )

    @classmethod
    def unrecorded(cls, fact: BatchFact, spec: ReleaseSpecification) -> BatchReleaseView:
        """A batch known from manufacturing with nothing recorded yet: every test pending."""
        return cls(
            fact.batch_id,
            fact.coi,
            fact.manufacturing_site_id,
            list(fact.product_dins),
            fact.hold_condition,
            spec.version,
            ReleaseStatus.OPEN.value,
            [],
            spec.tests,
            [],
            [],
            [],
        )
