"""The release rules every decision and result is checked against, as small pure functions."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from v2v_release.domain.values import BatchFact, Correction, ReleaseStatus
from v2v_platform.errors import InvalidInput, Refused

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
RELEASED_AS = {
    ReleaseStatus.PROVISIONALLY_CERTIFIED: "provisional",
    ReleaseStatus.OOS_RELEASED: "oos",
}


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
