"""The release rules every decision and result is checked against, as small pure functions.

Clinical times (when a result was read, when a decision was made in the lab) keep the chain
causal: no QC result before the batch started; no decision before the batch started or was
harvested, before the results it rests on, or before the decision it follows. A time out of
sequence is invalid input naming its field (INVALID_ARGUMENT / 422), like a time in the future.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Protocol

from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.limits import check_not_before
from v2v_release.domain.specification import Phase
from v2v_release.domain.values import BatchFact, Correction, DecisionKind, ReleaseStatus

DECIDABLE_FROM: dict[str, frozenset[ReleaseStatus]] = {
    "certified provisionally": frozenset({ReleaseStatus.OPEN}),
    "certified finally": frozenset({ReleaseStatus.OPEN, ReleaseStatus.PROVISIONALLY_CERTIFIED}),
    "rejected": frozenset(
        {
            ReleaseStatus.OPEN,
            ReleaseStatus.PROVISIONALLY_CERTIFIED,
            ReleaseStatus.OOS_JUSTIFIED,
        }
    ),
    "justified for OOS release": frozenset(
        {ReleaseStatus.OPEN, ReleaseStatus.PROVISIONALLY_CERTIFIED}
    ),
    "accepted for OOS release": frozenset({ReleaseStatus.OOS_JUSTIFIED}),
}
STATUS_AFTER = {
    DecisionKind.PROVISIONAL: ReleaseStatus.PROVISIONALLY_CERTIFIED,
    DecisionKind.FINAL: ReleaseStatus.FINALLY_CERTIFIED,
    DecisionKind.REJECTED: ReleaseStatus.REJECTED,
    DecisionKind.OOS_JUSTIFIED: ReleaseStatus.OOS_JUSTIFIED,
    DecisionKind.OOS_ACCEPTED: ReleaseStatus.OOS_RELEASED,
}
RELEASED_AS = {
    ReleaseStatus.PROVISIONALLY_CERTIFIED: "provisional",
    ReleaseStatus.OOS_RELEASED: "oos",
}


class ReleaseState(Protocol):
    """What the rules read of a batch's release record."""

    batch_id: str
    status: ReleaseStatus
    post_release_failure_ids: list[str]

    @property
    def pending_tests(self) -> list[str]: ...

    @property
    def failed_tests(self) -> list[str]: ...

    def tests(self, phase: Phase | None = None) -> list[str]: ...


def check_result_time(result_at: datetime, batch_started_at: datetime) -> None:
    """A QC result is read once the batch has started."""
    check_not_before(result_at, "result_at", batch_started_at, "the batch's start")


def check_decision_time(
    at: datetime,
    field: str,
    fact: BatchFact,
    previous: tuple[str, datetime] | None,
    results: Mapping[str, datetime],
) -> None:
    """A decision at `at` follows the batch's start and harvest, the previous decision
    (kind, time) and every result it rests on (`results`: test -> result time, in the
    specification's order)."""
    check_not_before(at, field, fact.started_at, "the batch's start")
    check_not_before(at, field, fact.harvested_at, "the batch's harvest")
    if previous is not None:
        kind, decided_at = previous
        check_not_before(at, field, decided_at, f"the {kind} decision")
    if results:  # the latest (the first of the specification's order among equals)
        test, result_at = max(results.items(), key=lambda item: item[1])
        check_not_before(at, field, result_at, f"the {test} result")


def listed(tests: Collection[str]) -> str:
    return ", ".join(sorted(tests))


def check_decidable(fact: BatchFact) -> None:
    """Manufacturing must have made product units, and not failed the batch."""
    if fact.failure_reason is not None:
        raise Refused(
            f"manufacturing reported batch {fact.batch_id} as failed ({fact.failure_reason});"
            " no release decision can be made"
        )
    if not fact.product_dins or fact.hold_condition is None:
        raise Refused(
            f"batch {fact.batch_id} has no product units yet; no release decision can be made"
        )


def check_status(batch_id: str, status: ReleaseStatus, action: str) -> None:
    allowed = DECIDABLE_FROM[action]
    if status not in allowed:
        shown = " or ".join(sorted(s.value for s in allowed))
        raise Refused(f"batch {batch_id} is {status.value}; it can be {action} only when {shown}")


def check_all_present(batch_id: str, needed: Collection[str], pending: Collection[str]) -> None:
    missing = [test for test in needed if test in pending]
    if missing:
        raise Refused(f"batch {batch_id} has no result yet for: {listed(missing)}")


def check_all_passed(batch_id: str, needed: Collection[str], failed: Collection[str]) -> None:
    failing = [test for test in needed if test in failed]
    if failing:
        raise Refused(f"batch {batch_id} failed: {listed(failing)}")


def check_may_add_result(
    test: str,
    correction: Correction | None,
    current: Mapping[str, str],
    decided: bool,
) -> None:
    """A first result for a test, or a correction of its current result before any decision."""
    current_id = current.get(test)
    if correction is None:
        if current_id is not None:
            raise Refused(
                f"{test} already has result {current_id}; a second result must correct it"
                " (corrects_result_id and correction_reason) before any decision"
            )
        return
    if decided:
        raise Refused("results cannot be corrected once a release decision has been made")
    if correction.corrects_result_id != current_id:
        raise InvalidInput(
            f"result {correction.corrects_result_id} is not the current {test} result"
            f" ({current_id or 'there is none'})"
        )


def check_decision(state: ReleaseState, fact: BatchFact, action: str) -> None:
    check_decidable(fact)
    check_status(state.batch_id, state.status, action)


def check_provisional(state: ReleaseState, fact: BatchFact) -> None:
    """Fresh product, open, every pre-release test passed."""
    check_decision(state, fact, "certified provisionally")
    if fact.hold_condition is Condition.CRYO:
        raise Refused(
            f"batch {state.batch_id} is cryopreserved; only fresh product may be"
            " provisionally certified"
        )
    pre_release = state.tests(Phase.PRE_RELEASE)
    check_all_present(state.batch_id, pre_release, state.pending_tests)
    check_all_passed(state.batch_id, pre_release, state.failed_tests)


def check_final(state: ReleaseState, fact: BatchFact) -> None:
    """Every test has a result and all passed; never after a post-release failure."""
    check_decision(state, fact, "certified finally")
    if state.post_release_failure_ids:
        raise Refused(
            f"batch {state.batch_id} had a post-release failure"
            f" ({', '.join(state.post_release_failure_ids)}); it cannot be finally certified"
        )
    check_all_present(state.batch_id, state.tests(), state.pending_tests)
    check_all_passed(state.batch_id, state.tests(), state.failed_tests)


def check_rejection(state: ReleaseState, fact: BatchFact, reason: str) -> None:
    if not reason.strip():
        raise InvalidInput("rejecting a batch needs a reason")
    check_decision(state, fact, "rejected")


def check_oos_justification(state: ReleaseState, fact: BatchFact, justification: str) -> None:
    """A failed test, and the results the product kind needs: fresh product every
    pre-release result, cryopreserved product every result."""
    if not justification.strip():
        raise InvalidInput("an OOS release needs the QP's justification")
    check_decision(state, fact, "justified for OOS release")
    if not state.failed_tests:
        raise Refused(f"batch {state.batch_id} has no failed test: nothing to justify")
    fresh = fact.hold_condition is not Condition.CRYO
    needed = state.tests(Phase.PRE_RELEASE) if fresh else state.tests()
    check_all_present(state.batch_id, needed, state.pending_tests)
