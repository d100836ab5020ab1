"""A release record's QC results as the aggregate cache hands them out (issue 18 item 2,
commands at 30 % of the raw save rate): results and their analysts are immutable values shared
between the cached record and every copy a command gets (not rebuilt one by one for every
correction), and a correction still replaces the corrected result in the command's copy only
until it is saved."""

from __future__ import annotations

from v2v_platform.aggregate_cache import CachedRepository
from v2v_release.application import ReleaseApplication
from v2v_release.domain.batch_release import BatchRelease, release_id
from v2v_release.domain.values import Correction
from v2v_testkit.release import BATCH_ID, qc, report


def test_results_are_shared_by_the_copies_and_corrections_stay_in_order(
    app: ReleaseApplication,
) -> None:
    current = app.record_qc_result(BATCH_ID, report("viability", "65"), None, qc())
    for n in range(20):
        fix = Correction(current.result_id, f"retest {n}")
        current = app.record_qc_result(BATCH_ID, report("viability", f"{80 + n % 10}"), fix, qc())
    assert isinstance(app.repository, CachedRepository)
    first = app.get(BatchRelease, release_id(BATCH_ID), "release record")
    second = app.get(BatchRelease, release_id(BATCH_ID), "release record")
    assert first is not second and first.results is not second.results
    assert len(first.results) == 21
    for result_id, result in first.results.items():
        assert second.results[result_id] is result
        assert result.analyst is second.results[result_id].analyst
    assert first.current_result("viability").result_id == current.result_id
    corrected = [r for r in first.results.values() if r.corrected_by_result_id]
    assert len(corrected) == 20
    first.results.clear()  # a command's copy is its own
    again = app.get(BatchRelease, release_id(BATCH_ID), "release record")
    assert len(again.results) == 21
