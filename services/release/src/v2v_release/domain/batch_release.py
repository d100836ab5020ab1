"""The release record of ONE product batch: QC results judged against the batch's specification
version, and the e-signed decisions (provisional, final, rejected, OOS justified / accepted).

Its id is derived from the batch id, so two first commands for a batch collide in the event
store instead of opening two records. Every decision signs a record (see the events proto)
whose hash is bound into the signature's manifestation; the manifestation is stored with the
decision. A failing result after release (provisional or accepted OOS) is recorded together
with a post-release failure, in the same save.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4, uuid5

from eventsourcing.domain import Aggregate

from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.errors import InvalidInput
from v2v_release.domain import rules
from v2v_release.domain.specification import Criterion, Phase, ReleaseSpecification
from v2v_release.domain.values import (
    Analyst,
    BatchFact,
    Correction,
    Decision,
    DecisionKind,
    QcReport,
    RecordedResult,
    ReleaseStatus,
)

RELEASE_NAMESPACE = UUID("5b0e7f3a-6c1d-4e2f-9a8b-7c6d5e4f3a21")
Sign = Callable[[Mapping[str, Any]], SignatureManifestation]


def release_id(batch_id: str) -> UUID:
    return uuid5(RELEASE_NAMESPACE, batch_id)


class ReleaseEvent(AttributedEvent):
    """An event of a batch's release record after it was opened: it names the batch."""

    batch_id: str


class BatchRelease(Aggregate):
    class Opened(AttributedCreated):
        batch_id: str
        manufacturing_site_id: str
        product_dins: list[str]
        condition: str
        batch_started_at: datetime
        spec_version: str
        criteria: list[dict[str, Any]]

    class QcResultRecorded(ReleaseEvent):
        result_id: str
        test: str
        method: str
        value: str
        unit: str
        result_at: datetime
        analyst: dict[str, str]
        spec_version: str
        criterion: str
        passed: bool
        corrects_result_id: str
        pending_tests: list[str]

        @property
        def occurred_at(self) -> datetime:
            return self.result_at

        def apply(self, aggregate: Any) -> None:
            result = RecordedResult(
                self.result_id,
                self.test,
                self.method,
                self.value,
                self.unit,
                self.result_at,
                Analyst(**self.analyst),
                self.passed,
                self.criterion,
            )
            aggregate.add_result(result, self.corrects_result_id)

    class PostReleaseFailureRecorded(ReleaseEvent):
        failure_id: str
        spec_version: str
        product_dins: list[str]
        test: str
        value: str
        unit: str
        criterion: str
        result_at: datetime
        released_as: str

        @property
        def occurred_at(self) -> datetime:
            return self.result_at

        def apply(self, aggregate: Any) -> None:
            aggregate.post_release_failure_ids.append(self.failure_id)

    class ProvisionallyCertified(ReleaseEvent):
        spec_version: str
        product_dins: list[str]
        certified_at: datetime
        qp_signature: dict[str, str]
        signature_meaning: str
        pending_tests: list[str]

        @property
        def occurred_at(self) -> datetime:
            return self.certified_at

        def apply(self, aggregate: Any) -> None:
            decision = Decision(DecisionKind.PROVISIONAL, self.certified_at, "", self.qp_signature)
            aggregate.add_decision(decision, self.product_dins)

    class FinallyCertified(ReleaseEvent):
        spec_version: str
        product_dins: list[str]
        certified_at: datetime
        qp_signature: dict[str, str]
        signature_meaning: str

        @property
        def occurred_at(self) -> datetime:
            return self.certified_at

        def apply(self, aggregate: Any) -> None:
            decision = Decision(DecisionKind.FINAL, self.certified_at, "", self.qp_signature)
            aggregate.add_decision(decision, self.product_dins)

    class Rejected(ReleaseEvent):
        spec_version: str
        product_dins: list[str]
        rejected_at: datetime
        failed_tests: list[str]
        qp_signature: dict[str, str]
        signature_meaning: str

        @property
        def occurred_at(self) -> datetime:
            return self.rejected_at

        def apply(self, aggregate: Any) -> None:
            decision = Decision(
                DecisionKind.REJECTED, self.rejected_at, self.reason, self.qp_signature
            )
            aggregate.add_decision(decision, self.product_dins)

    class OosReleaseJustified(ReleaseEvent):
        spec_version: str
        product_dins: list[str]
        failed_tests: list[str]
        justification: str
        justified_at: datetime
        qp_signature: dict[str, str]
        signature_meaning: str

        @property
        def occurred_at(self) -> datetime:
            return self.justified_at

        def apply(self, aggregate: Any) -> None:
            decision = Decision(
                DecisionKind.OOS_JUSTIFIED, self.justified_at, self.justification, self.qp_signature
            )
            aggregate.add_decision(decision, self.product_dins)
            aggregate.justification_hash = self.qp_signature.get("record_hash", "")

    class OosReleaseAccepted(ReleaseEvent):
        spec_version: str
        product_dins: list[str]
        treating_site_id: str
        accepted_at: datetime
        physician_signature: dict[str, str]
        signature_meaning: str

        @property
        def occurred_at(self) -> datetime:
            return self.accepted_at

        def apply(self, aggregate: Any) -> None:
            decision = Decision(
                DecisionKind.OOS_ACCEPTED, self.accepted_at, "", self.physician_signature
            )
            aggregate.add_decision(decision, self.product_dins)

    def __init__(
        self,
        coi: str,
        batch_id: str,
        manufacturing_site_id: str,
        product_dins: list[str],
        condition: str,
        batch_started_at: datetime,
        spec_version: str,
        criteria: list[dict[str, Any]],
        **_: Any,
    ) -> None:
        self.coi = coi
        self.batch_id = batch_id
        self.manufacturing_site_id = manufacturing_site_id
        self.product_dins = list(product_dins)
        self.condition = Condition(condition) if condition else None
        self.batch_started_at = batch_started_at
        self.spec_version = spec_version
        self.criteria = [Criterion.from_dict(c) for c in criteria]
        self.status = ReleaseStatus.OPEN
        self.results: dict[str, RecordedResult] = {}
        self.current: dict[str, str] = {}  # test -> id of its current (uncorrected) result
        self.decisions: list[Decision] = []
        self.post_release_failure_ids: list[str] = []
        self.justification_hash = ""

    @classmethod
    def open(cls, fact: BatchFact, spec: ReleaseSpecification, by: Attribution) -> BatchRelease:
        return cls._create(
            cls.Opened,
            id=release_id(fact.batch_id),
            batch_id=fact.batch_id,
            manufacturing_site_id=fact.manufacturing_site_id,
            product_dins=list(fact.product_dins),
            condition=fact.hold_condition.value if fact.hold_condition else "",
            batch_started_at=fact.started_at,
            spec_version=spec.version,
            criteria=[c.as_dict() for c in spec.criteria],
            **attributed(by, fact.coi),
        )

    # what the record knows

    def criterion(self, test: str) -> Criterion:
        for criterion in self.criteria:
            if criterion.test == test:
                return criterion
        known = ", ".join(c.test for c in self.criteria)
        raise InvalidInput(
            f"unknown test {test!r}; specification {self.spec_version} knows: {known}"
        )

    def tests(self, phase: Phase | None = None) -> list[str]:
        return [c.test for c in self.criteria if phase is None or c.phase is phase]

    @property
    def pending_tests(self) -> list[str]:
        return [test for test in self.tests() if test not in self.current]

    @property
    def failed_tests(self) -> list[str]:
        return [t for t in self.tests() if t in self.current and not self.current_result(t).passed]

    def current_result(self, test: str) -> RecordedResult:
        return self.results[self.current[test]]

    # what the events change

    def add_result(self, result: RecordedResult, corrects_result_id: str) -> None:
        if corrects_result_id:
            corrected = self.results[corrects_result_id]
            self.results[corrects_result_id] = replace(
                corrected, corrected_by_result_id=result.result_id
            )
        self.results[result.result_id] = result
        self.current[result.test] = result.result_id

    def add_decision(self, decision: Decision, product_dins: list[str]) -> None:
        self.decisions.append(decision)
        self.status = rules.STATUS_AFTER[decision.decision]
        self.product_dins = list(product_dins)

    # results

    def record_result(
        self, report: QcReport, correction: Correction | None, by: Attribution
    ) -> tuple[RecordedResult, str]:
        """The recorded result and, when it is a post-release failure, its failure id."""
        judgement = self.criterion(report.test).judge(report.value, report.unit, report.method)
        rules.check_may_add_result(report.test, correction, self.current, bool(self.decisions))
        rules.check_result_time(report.result_at, self.batch_started_at)
        result_id = str(uuid4())
        self.trigger_event(
            self.QcResultRecorded,
            result_id=result_id,
            test=report.test,
            method=report.method.strip(),
            value=report.value.strip(),
            unit=report.unit.strip(),
            result_at=report.result_at,
            analyst=report.analyst.as_dict(),
            spec_version=self.spec_version,
            criterion=judgement.criterion,
            passed=judgement.passed,
            corrects_result_id=correction.corrects_result_id if correction else "",
            pending_tests=[t for t in self.pending_tests if t != report.test],
            **self._attributed(by.because(correction.reason) if correction else by),
        )
        released_as = rules.RELEASED_AS.get(self.status)
        if judgement.passed or released_as is None:
            return self.results[result_id], ""
        self._record_post_release_failure(self.results[result_id], released_as, by)
        return self.results[result_id], result_id

    def _record_post_release_failure(
        self, result: RecordedResult, released_as: str, by: Attribution
    ) -> None:
        self.trigger_event(
            self.PostReleaseFailureRecorded,
            failure_id=result.result_id,
            spec_version=self.spec_version,
            product_dins=list(self.product_dins),
            test=result.test,
            value=result.value,
            unit=result.unit,
            criterion=result.criterion,
            result_at=result.result_at,
            released_as=released_as,
            **self._attributed(by),
        )

    # decisions

    def certify_provisionally(
        self, fact: BatchFact, sign: Sign, at: datetime, by: Attribution
    ) -> None:
        rules.check_provisional(self, fact)
        self._check_time(fact, at, "certified_at", self.tests(Phase.PRE_RELEASE))
        signature = sign(self._certified_record(DecisionKind.PROVISIONAL, fact))
        self.trigger_event(
            self.ProvisionallyCertified,
            pending_tests=self.pending_tests,
            certified_at=at,
            **self._signed(fact, signature, by),
        )

    def certify_finally(self, fact: BatchFact, sign: Sign, at: datetime, by: Attribution) -> None:
        rules.check_final(self, fact)
        self._check_time(fact, at, "certified_at", self.tests())
        signature = sign(self._certified_record(DecisionKind.FINAL, fact))
        self.trigger_event(
            self.FinallyCertified, certified_at=at, **self._signed(fact, signature, by)
        )

    def reject(self, fact: BatchFact, sign: Sign, at: datetime, by: Attribution) -> None:
        """Rejected for `by.reason`."""
        rules.check_rejection(self, fact, by.reason)
        failed = self.failed_tests
        self._check_time(fact, at, "rejected_at", failed)
        record = self._record(DecisionKind.REJECTED, fact, reason=by.reason, failed_tests=failed)
        self.trigger_event(
            self.Rejected,
            rejected_at=at,
            failed_tests=failed,
            **self._signed(fact, sign(record), by),
        )

    def justify_oos(self, fact: BatchFact, sign: Sign, at: datetime, by: Attribution) -> None:
        """Justified by the QP for `by.reason`."""
        justification = by.reason.strip()
        rules.check_oos_justification(self, fact, justification)
        failed = self.failed_tests
        fresh = fact.hold_condition is not Condition.CRYO
        self._check_time(fact, at, "justified_at", self.tests(Phase.PRE_RELEASE if fresh else None))
        record = self._record(
            DecisionKind.OOS_JUSTIFIED, fact, failed_tests=failed, justification=justification
        )
        self.trigger_event(
            self.OosReleaseJustified,
            failed_tests=failed,
            justification=justification,
            justified_at=at,
            **self._signed(fact, sign(record), by),
        )

    def accept_oos(
        self, fact: BatchFact, treating_site_id: str, sign: Sign, at: datetime, by: Attribution
    ) -> None:
        rules.check_decision(self, fact, "accepted for OOS release")
        self._check_time(fact, at, "accepted_at", [])
        record = self._record(
            DecisionKind.OOS_ACCEPTED,
            fact,
            failed_tests=self.failed_tests,
            justification_hash=self.justification_hash,
        )
        fields = self._signed(fact, sign(record), by)
        fields["physician_signature"] = fields.pop("qp_signature")
        self.trigger_event(
            self.OosReleaseAccepted, treating_site_id=treating_site_id, accepted_at=at, **fields
        )

    def _check_time(self, fact: BatchFact, at: datetime, field: str, basis: list[str]) -> None:
        """A decision at `at` (its field `field`) follows the batch's start and harvest, the
        previous decision and the current results of the tests in `basis`."""
        last = self.decisions[-1] if self.decisions else None
        previous = (last.decision.value, last.decided_at) if last else None
        results = {t: self.current_result(t).result_at for t in basis if t in self.current}
        rules.check_decision_time(at, field, fact, previous, results)

    def _record(self, decision: DecisionKind, fact: BatchFact, **content: Any) -> dict[str, Any]:
        """The signed record of a decision (fields per message in the events proto)."""
        return {
            "batch_id": self.batch_id,
            "coi": self.coi,
            "decision": decision.value,
            "spec_version": self.spec_version,
            "product_dins": list(fact.product_dins),
            **content,
        }

    def _certified_record(self, decision: DecisionKind, fact: BatchFact) -> dict[str, Any]:
        return self._record(decision, fact, results=dict(sorted(self.current.items())))

    def _signed(
        self, fact: BatchFact, signature: SignatureManifestation, by: Attribution
    ) -> dict[str, Any]:
        return {
            "spec_version": self.spec_version,
            "product_dins": list(fact.product_dins),
            "qp_signature": signature.as_dict(),
            "signature_meaning": signature.meaning,
            **self._attributed(by),
        }

    def _attributed(self, by: Attribution) -> dict[str, Any]:
        return {"batch_id": self.batch_id, **attributed(by, self.coi)}
