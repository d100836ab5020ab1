"""Bounded input at release (issue 12): no QC result time in the future, finite numeric
results, texts and signatures within their limits, and no accepted command near the broker's
record limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from v2v_platform.attribution import Attribution
from v2v_platform.errors import InvalidInput
from v2v_platform.esign import SignatureRequest
from v2v_platform.limits import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    sealed_sizes,
)
from v2v_release.adapters.payloads import TRANSLATOR
from v2v_release.application import ReleaseApplication
from v2v_release.domain.values import Analyst, Correction
from v2v_testkit.release import (
    BATCH_ID,
    PHYSICIAN_USER,
    POST_RELEASE,
    PRE_RELEASE,
    QC_SITE,
    QP_USER,
    TREATING_SITE,
    kinds,
    physician_signature,
    qc,
    qp_signature,
    record,
    report,
    stored_events,
)

MB = 1024 * 1024


def test_a_qc_result_time_in_2999_is_refused_and_nothing_recorded(
    app: ReleaseApplication,
) -> None:
    future = report("viability", at=datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match="result_at 2999-01-01T00:00:00"):
        app.record_qc_result(BATCH_ID, future, None, qc())
    assert kinds(app) == []


@pytest.mark.parametrize("value", ["NaN", "inf", "-Infinity"])
def test_a_numeric_result_must_be_finite(app: ReleaseApplication, value: str) -> None:
    with pytest.raises(InvalidInput, match="viability needs a finite number"):
        app.record_qc_result(BATCH_ID, report("viability", value), None, qc())
    assert kinds(app) == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"value": "9" * 65}, "value has 65 characters; the limit is 64"),
        ({"method": "m" * MB}, "method has 1048576 characters; the limit is 200"),
        ({"test": "t" * 65}, "test has 65 characters; the limit is 64"),
    ],
)
def test_a_qc_report_over_its_limits_is_refused(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        replace(report("viability"), **fields)


def test_an_analyst_is_bounded() -> None:
    with pytest.raises(InvalidInput, match=r"analyst\.printed_name has 201 characters; the limit"):
        Analyst("u-lab", "N" * 201)
    with pytest.raises(InvalidInput, match=r"analyst\.user_id has 65 characters; the limit is 64"):
        Analyst("u" * 65, "Lee Lab")


def test_a_correction_reason_is_bounded() -> None:
    with pytest.raises(InvalidInput, match="correction_reason has 2001 characters; the limit"):
        Correction("r-1", "r" * 2001)


def test_a_rejection_reason_and_a_justification_are_bounded(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE, viability="65")
    with pytest.raises(InvalidInput, match="reason has 2001 characters; the limit is 2000"):
        app.reject(BATCH_ID, "r" * 2001, qp_signature(), qc())
    with pytest.raises(InvalidInput, match="justification has 1048576 characters; the limit"):
        app.justify_oos_release(BATCH_ID, "j" * MB, qp_signature(), qc())


def test_a_megabyte_password_is_refused_before_it_is_hashed(app: ReleaseApplication) -> None:
    record(app, PRE_RELEASE)
    huge = SignatureRequest(QP_USER, "p" * MB, "approval")
    with pytest.raises(InvalidInput, match=r"signature\.password has 1048576 characters; the lim"):
        app.certify_provisionally(BATCH_ID, huge, qc())


def test_no_accepted_command_comes_near_the_record_limit(app: ReleaseApplication) -> None:
    """The largest accepted value of every field, each command once: every envelope stays
    far below MAX_EVENT_BYTES (and the broker's 1 MiB)."""
    reason = "r" * MAX_TEXT_CHARS
    analyst = Analyst("a" * MAX_ID_CHARS, "A" * MAX_NAME_CHARS)
    lab = Attribution("u" * MAX_ID_CHARS, "N" * MAX_NAME_CHARS, "qc", QC_SITE, reason)
    results = {
        test: app.record_qc_result(BATCH_ID, replace(report(test), analyst=analyst), None, lab)
        for test in PRE_RELEASE
    }
    corrected = replace(report("viability", "65"), analyst=analyst)
    correction = Correction(results["viability"].result_id, reason)
    app.record_qc_result(BATCH_ID, corrected, correction, lab)
    app.justify_oos_release(BATCH_ID, reason, qp_signature(), lab)
    doctor = Attribution(PHYSICIAN_USER, "N" * MAX_NAME_CHARS, "infusion", TREATING_SITE, reason)
    app.accept_oos_release(BATCH_ID, physician_signature(), doctor)
    app.record_qc_result(BATCH_ID, report("sterility", "positive"), None, lab)
    for test in POST_RELEASE[1:]:
        app.record_qc_result(BATCH_ID, report(test), None, lab)
    sizes = sealed_sizes(TRANSLATOR.translate, stored_events(app))
    assert len(sizes) >= 5, sizes
    assert max(sizes.values()) < MAX_EVENT_BYTES, sizes


def test_a_report_at_its_limits_is_accepted(app: ReleaseApplication) -> None:
    given = replace(report("viability"), analyst=Analyst("a" * 64, "A" * 200))
    assert app.record_qc_result(BATCH_ID, given, None, qc()).passed
