"""QC results: judged by the service against the batch's specification version, pending tests
always known, corrections only of the current result and only before any decision."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from v2v_platform.auth.identity import Role
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused
from v2v_release.application import ReleaseApplication
from v2v_release.domain.specification import (
    Criterion,
    Phase,
    ReleaseSpecification,
    SpecificationCatalog,
)
from v2v_release.domain.values import Correction
from v2v_testkit.release import (
    BATCH_ID,
    COI,
    GMP,
    OTHER_BATCH_ID,
    OTHER_SITE,
    POST_RELEASE,
    PRE_RELEASE,
    QC_SITE,
    TREATING_SITE,
    Clock,
    InMemoryReleaseFacts,
    build_app,
    kinds,
    qc,
    qp_signature,
    reader,
    record,
    report,
    stored_events,
)

V2 = ReleaseSpecification(
    "v2",
    datetime(2025, 6, 1, tzinfo=UTC),
    (
        Criterion("viability", Phase.PRE_RELEASE, "%", minimum=95),
        Criterion("sterility", Phase.POST_RELEASE, expected="negative"),
    ),
)


def test_a_result_is_judged_and_the_pending_tests_are_known(app: ReleaseApplication) -> None:
    low = app.record_qc_result(BATCH_ID, report("viability", "65"), None, qc())
    assert (low.passed, low.criterion) == (False, ">= 70 %")
    assert low.pending_tests == [*PRE_RELEASE[1:], *POST_RELEASE]
    view = app.batch_release(BATCH_ID, reader())
    assert view.pending_tests == low.pending_tests and view.failed_tests == ["viability"]
    assert view.status == "open" and view.spec_version == "v1"
    [result] = view.results
    assert (result.test, result.value, result.unit, result.analyst["printed_name"]) == (
        "viability",
        "65",
        "%",
        "Lee Lab",
    )


def test_the_first_result_opens_the_record_in_the_same_save(app: ReleaseApplication) -> None:
    record(app, ["viability", "cd3"])
    assert kinds(app) == ["Opened", "QcResultRecorded", "QcResultRecorded"]
    opened, first, second = stored_events(app)
    assert (opened.batch_id, opened.coi, opened.spec_version) == (BATCH_ID, COI, "v1")
    assert opened.condition == "fresh-cold" and len(opened.criteria) == 9
    assert first.pending_tests == [*PRE_RELEASE[1:], *POST_RELEASE]
    assert second.pending_tests == [*PRE_RELEASE[2:], *POST_RELEASE]
    assert {e.spec_version for e in (first, second)} == {"v1"}


def test_an_untouched_known_batch_shows_every_test_pending(app: ReleaseApplication) -> None:
    view = app.batch_release(BATCH_ID, reader())
    assert view.status == "open" and len(view.pending_tests) == 9 and not view.results
    assert not stored_events(app)  # reading opens nothing


def test_the_version_is_the_one_in_force_when_the_batch_started(clock: Clock) -> None:
    facts = InMemoryReleaseFacts()
    facts.started(BATCH_ID, started_at=datetime(2025, 5, 31, 23, 59, tzinfo=UTC))
    facts.started(OTHER_BATCH_ID, started_at=datetime(2025, 6, 1, tzinfo=UTC))
    app = build_app(facts, clock, specifications=SpecificationCatalog([V2]))
    before = app.record_qc_result(BATCH_ID, report("viability", "90"), None, qc())
    after = app.record_qc_result(OTHER_BATCH_ID, report("viability", "90"), None, qc())
    assert (before.passed, before.criterion) == (True, ">= 70 %")
    assert (after.passed, after.criterion) == (False, ">= 95 %")
    assert after.pending_tests == ["sterility"]
    assert app.batch_release(BATCH_ID, reader()).spec_version == "v1"
    assert app.batch_release(OTHER_BATCH_ID, reader()).spec_version == "v2"
    with pytest.raises(InvalidInput, match="specification v2 knows: viability, sterility"):
        app.record_qc_result(OTHER_BATCH_ID, report("cd3"), None, qc())


def test_an_unknown_test_is_invalid_listing_the_known_tests(app: ReleaseApplication) -> None:
    bogus = replace(report("viability"), test="ph")
    with pytest.raises(InvalidInput, match=r"unknown test 'ph'.*viability, cd3, car, dose"):
        app.record_qc_result(BATCH_ID, bogus, None, qc())
    assert not stored_events(app)


def test_a_result_in_the_wrong_unit_is_invalid(app: ReleaseApplication) -> None:
    wrong = replace(report("dose"), unit="cells/kg")
    with pytest.raises(InvalidInput, match=r"reported in '10\^6 CAR\+ cells/kg'"):
        app.record_qc_result(BATCH_ID, wrong, None, qc())


def test_an_unknown_or_malformed_batch_is_refused(app: ReleaseApplication) -> None:
    with pytest.raises(NotFound, match=f"batch {OTHER_BATCH_ID} is not known to release yet"):
        app.record_qc_result(OTHER_BATCH_ID, report("viability"), None, qc())
    with pytest.raises(InvalidInput, match="not a UUID"):
        app.record_qc_result("batch-7", report("viability"), None, qc())
    with pytest.raises(NotFound):
        app.batch_release(OTHER_BATCH_ID, reader())


def test_a_batch_is_read_by_its_treating_site_qc_and_auditors_only(
    app: ReleaseApplication,
) -> None:
    """Its QC site (this one), manufacturing site, treating site and auditors; another QC
    site reads it no more (issue 13)."""
    assert app.batch_release(BATCH_ID, reader(TREATING_SITE, Role.INFUSION)).coi == COI
    assert app.batch_release(BATCH_ID, reader(QC_SITE, Role.QC)).coi == COI
    assert app.batch_release(BATCH_ID, reader(GMP, Role.QC)).coi == COI
    assert app.batch_release(BATCH_ID, reader("AUDIT-1", Role.AUDITOR)).coi == COI
    with pytest.raises(NotFound, match=f"no batch {BATCH_ID} is visible to site QC-9"):
        app.batch_release(BATCH_ID, reader("QC-9", Role.QC))
    with pytest.raises(NotFound, match=f"no batch {BATCH_ID} is visible to site {OTHER_SITE}"):
        app.batch_release(BATCH_ID, reader(OTHER_SITE, Role.INFUSION))


def test_qc_commands_come_from_this_site_only(app: ReleaseApplication) -> None:
    with pytest.raises(Forbidden, match="records for site QC-1, not QC-9"):
        app.record_qc_result(BATCH_ID, report("viability"), None, qc("QC-9"))


def test_a_second_result_without_correction_is_refused(app: ReleaseApplication) -> None:
    first = record(app, ["viability"])["viability"]
    with pytest.raises(Refused, match=f"already has result {first.result_id}"):
        app.record_qc_result(BATCH_ID, report("viability", "91"), None, qc())
    assert kinds(app) == ["Opened", "QcResultRecorded"]


def test_a_correction_replaces_the_current_result_before_any_decision(
    app: ReleaseApplication,
) -> None:
    wrong = app.record_qc_result(BATCH_ID, report("viability", "55"), None, qc())
    fix = Correction(wrong.result_id, "sample mislabelled; retested")
    corrected = app.record_qc_result(BATCH_ID, report("viability", "91"), fix, qc())
    assert corrected.passed and "viability" not in corrected.pending_tests
    view = app.batch_release(BATCH_ID, reader())
    assert view.failed_tests == []
    replaced, current = view.results
    assert replaced.corrected_by_result_id == corrected.result_id
    assert current.corrected_by_result_id == ""
    event = stored_events(app)[-1]
    assert event.corrects_result_id == wrong.result_id
    assert event.reason == "sample mislabelled; retested"


def test_a_correction_needs_a_reason_and_the_current_result(app: ReleaseApplication) -> None:
    first = record(app, ["viability"])["viability"]
    with pytest.raises(InvalidInput, match="a correction reason is required"):
        Correction(first.result_id, " ")
    fix = Correction(first.result_id, "retest")
    assert app.record_qc_result(BATCH_ID, report("viability", "80"), fix, qc()).passed
    with pytest.raises(InvalidInput, match=f"{first.result_id} is not the current viability"):
        app.record_qc_result(BATCH_ID, report("viability", "81"), fix, qc())
    stray = Correction(first.result_id, "retest")
    with pytest.raises(InvalidInput, match="there is none"):
        app.record_qc_result(BATCH_ID, report("cd3"), stray, qc())


def test_no_correction_once_a_decision_is_made(app: ReleaseApplication) -> None:
    results = record(app, PRE_RELEASE)
    app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    fix = Correction(results["viability"].result_id, "typo")
    with pytest.raises(Refused, match="cannot be corrected once a release decision"):
        app.record_qc_result(BATCH_ID, report("viability", "93"), fix, qc())
    # a first result of a pending test is still welcome
    assert app.record_qc_result(BATCH_ID, report("vcn"), None, qc()).pending_tests == [
        "sterility",
        "rcl",
    ]


def test_concurrent_first_results_open_one_record(facts: InMemoryReleaseFacts) -> None:
    app = build_app(facts)
    tests = ["viability", "cd3", "car", "dose", "endotoxin", "mycoplasma"]
    start = threading.Barrier(len(tests))

    def first_result(test: str) -> None:
        start.wait()
        app.record_qc_result(BATCH_ID, report(test), None, qc())

    threads = [threading.Thread(target=first_result, args=(t,)) for t in tests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kinds(app).count("Opened") == 1
    assert sorted(r.test for r in app.batch_release(BATCH_ID, reader()).results) == sorted(tests)
