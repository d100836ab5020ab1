"""Bounded input at intake (issue 12): every field within its limit, finite numbers, no future
times, refused scans echoed bounded, and no accepted command near the broker's record limit."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from v2v_intake.adapters.payloads import TRANSLATOR
from v2v_intake.domain.therapy import Therapy
from v2v_intake.domain.values import PersonalDetails
from v2v_intake.views import PackagingInput
from v2v_platform.attribution import Attribution
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.limits import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_LABEL_CHARS,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    sealed_sizes,
)
from v2v_testkit.intake import (
    DETAILS,
    ENROLLED_AT,
    NOW,
    build_intake,
    collected,
    collection,
    enrolled,
    labelled,
    operator,
    proof,
    register_signer,
    stored_events,
)

MB = 1024 * 1024
YEAR_2999 = datetime(2999, 1, 1, tzinfo=UTC)


def test_a_printed_name_of_one_and_a_half_megabytes_is_refused() -> None:
    intake = build_intake()
    by = Attribution("u-1", "N" * (3 * MB // 2), "collection", "HOSP-A")
    with pytest.raises(InvalidInput, match=r"operator\.printed_name has 1572864 characters; the"):
        intake.app.enrol_patient("PSN-1", DETAILS, "HOSP-A", by)
    assert stored_events(intake) == []


def test_a_pseudonym_of_two_megabytes_is_refused() -> None:
    intake = build_intake()
    with pytest.raises(InvalidInput, match="patient_pseudonym has 2097152 characters; the limit"):
        intake.app.enrol_patient("P" * (2 * MB), DETAILS, "HOSP-A", operator())
    assert stored_events(intake) == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"mrn": "M" * 65}, "personal_details.mrn has 65 characters; the limit is 64"),
        ({"given_name": "G" * 201}, "personal_details.given_name has 201 characters"),
        ({"family_name": "F" * MB}, "personal_details.family_name has 1048576 characters"),
    ],
)
def test_personal_details_are_bounded(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        replace(DETAILS, **fields)


def test_an_erasure_reason_is_bounded() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    with pytest.raises(InvalidInput, match="reason has 2001 characters; the limit is 2000"):
        intake.app.erase_personal_details(coi, operator(reason="r" * 2001))


@pytest.mark.parametrize("field", ["volume_ml", "total_nucleated_cells_e9", "cd3_cells_e9"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_collection_numbers_must_be_finite(field: str, value: float) -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    changes: dict[str, Any] = {field: value}
    given = replace(collection(), **changes)
    with pytest.raises(InvalidInput, match=f"{field} must be a finite number"):
        intake.app.record_collection(coi, given, operator())


def test_a_collection_in_2999_is_refused_naming_the_field() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
    given = replace(collection(), started_at=YEAR_2999, ended_at=YEAR_2999 + timedelta(hours=4))
    with pytest.raises(InvalidInput, match="collection start 2999-01-01T00:00:00"):
        intake.app.record_collection(coi, given, operator())


def test_a_nan_packaging_temperature_is_refused_naming_the_field() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    intake.app.verify_label(coi, din, din, coi, proof("u-2"), operator("u-2"))
    with pytest.raises(InvalidInput, match="temperature_c must be a finite number"):
        intake.app.package_unit(coi, din, PackagingInput("cryo", float("nan"), "GMP-B"), operator())


def test_a_refused_scan_of_a_long_label_is_recorded_and_answered_cut() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    label = "X" * 300
    with pytest.raises(Refused) as refused:
        intake.app.verify_label(coi, din, label, "C" * (10 * MB), proof(), operator())
    [mismatch] = [e for e in stored_events(intake) if isinstance(e, Therapy.LabelMismatchRecorded)]
    assert mismatch.scanned_label == "X" * 256 + "…[cut: 300 characters in all]"
    assert mismatch.scanned_coi.endswith("…[cut: 10485760 characters in all]")
    assert len(mismatch.scanned_coi) < MAX_LABEL_CHARS + 50
    assert "X" * 257 not in str(refused.value) and "…[cut: 300 characters" in str(refused.value)


def test_no_accepted_command_comes_near_the_record_limit() -> None:
    """The largest accepted value of every field, each command once: every envelope stays
    far below MAX_EVENT_BYTES (and the broker's 1 MiB)."""
    intake = build_intake()
    longest = "N" * MAX_NAME_CHARS
    first = Attribution("u" * MAX_ID_CHARS, longest, "collection", "HOSP-A", "r" * MAX_TEXT_CHARS)
    second = replace(first, user_id="v" * MAX_ID_CHARS)
    details = PersonalDetails(longest, longest, "M" * MAX_ID_CHARS, date(1970, 1, 1))
    coi = intake.app.enrol_patient("P" * MAX_ID_CHARS, details, "HOSP-A", first, ENROLLED_AT)
    intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), first)
    collection_id = intake.app.record_collection(coi, collection(), first)
    dins = intake.app.label_units(coi, collection_id, 20, "apheresis-bag", first)
    register_signer(intake, first.user_id, longest)
    register_signer(intake, second.user_id, longest)
    signed = proof(first.user_id)
    with pytest.raises(Refused):
        intake.app.verify_label(coi, dins[0], "X" * (10 * MB), "C" * (10 * MB), signed, first)
    intake.app.verify_label(coi, dins[0], dins[0], coi, signed, first)
    intake.app.verify_label(coi, dins[0], dins[0], coi, proof(second.user_id), second)
    frozen = NOW - timedelta(minutes=30)
    intake.app.package_unit(coi, dins[0], PackagingInput("cryo", -180.0, "GMP-B", frozen), first)
    intake.app.erase_personal_details(coi, first)
    sizes = sealed_sizes(TRANSLATOR.translate, stored_events(intake))
    assert len(sizes) == 9
    assert max(sizes.values()) < MAX_EVENT_BYTES, sizes


def test_a_command_at_its_limits_is_accepted() -> None:
    intake = build_intake()
    coi, _ = collected(intake, "P" * MAX_ID_CHARS)
    assert coi
