"""DINs bound to the COI for life (I1) and two-person label verification (I2)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from v2v_platform.errors import Conflict, InvalidInput, NotFound, Refused
from v2v_platform.ids import Din
from v2v_testkit.intake import (
    FIN,
    Intake,
    build_intake,
    collected,
    labelled,
    operator,
    proof,
    reader,
    stored_events,
)


def _unit_status(intake: Intake, coi: str, din: str) -> str:
    [unit] = [u for u in intake.app.get_patient(coi, reader("HOSP-A")).units if u.din == din]
    return unit.status


def test_labelling_issues_dins_of_the_fin_and_year_bound_to_the_coi() -> None:
    intake = build_intake()
    coi, dins = labelled(intake, count=3)
    assert dins == [f"{FIN}25{n:06d}00" for n in (1, 2, 3)]
    assert all(Din.parse(d).fin == FIN for d in dins)
    units = intake.app.get_patient(coi, reader("HOSP-A")).units
    assert [u.din for u in units] == dins and {u.status for u in units} == {"labelled"}


def test_din_numbers_never_repeat_even_concurrently() -> None:
    intake = build_intake()
    coi, collection_id = collected(intake)

    def label(_: int) -> list[str]:
        for _attempt in range(50):
            try:
                return intake.app.label_units(coi, collection_id, 2, "qc-sample", operator())
            except Conflict:
                continue
        raise AssertionError("never succeeded")

    with ThreadPoolExecutor(max_workers=8) as pool:
        dins = [d for batch in pool.map(label, range(10)) for d in batch]
    assert len(dins) == len(set(dins)) == 20


@pytest.mark.parametrize(
    ("collection_id", "count", "kind", "error", "message"),
    [
        ("CHA123425000001-A09", 1, "apheresis-bag", NotFound, "no collection"),
        (None, 0, "apheresis-bag", InvalidInput, "unit count must be 1 to 20"),
        (None, 21, "apheresis-bag", InvalidInput, "unit count must be 1 to 20"),
        (None, 1, "bucket", InvalidInput, "unit kind 'bucket' is not one of"),
    ],
)
def test_labelling_refusals(
    collection_id: str | None, count: int, kind: str, error: type[Exception], message: str
) -> None:
    intake = build_intake()
    coi, real_collection = collected(intake)
    with pytest.raises(error, match=message):
        intake.app.label_units(coi, collection_id or real_collection, count, kind, operator())


def test_two_different_users_verify_a_label() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    assert intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1")) is False
    assert _unit_status(intake, coi, din) == "first-scan-done"
    assert intake.app.verify_label(coi, din, din, coi, proof("u-2"), operator("u-2")) is True
    assert _unit_status(intake, coi, din) == "verified"
    verified = stored_events(intake)[-1]
    assert (verified.first_user_id, verified.second_user_id) == ("u-1", "u-2")


def test_a_scan_with_the_check_character_matches_the_unit() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    printed = Din.parse(din).with_check_character()
    assert intake.app.verify_label(coi, din, printed, coi, proof("u-1"), operator("u-1")) is False


@pytest.mark.parametrize(
    ("scanned_din", "scanned_coi", "reason"),
    [
        ("A12342500000200", None, "din-mismatch"),
        (None, "CHA123425000002", "coi-mismatch"),
        ("NOT-A-DIN", None, "malformed"),
        (None, "CH-garbage", "malformed"),
    ],
)
def test_a_mismatching_scan_is_refused_recorded_and_changes_nothing_else(
    scanned_din: str | None, scanned_coi: str | None, reason: str
) -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    before = len(stored_events(intake))
    with pytest.raises(Refused, match=f"label refused \\({reason}\\)"):
        intake.app.verify_label(
            coi, din, scanned_din or din, scanned_coi or coi, proof("u-1"), operator("u-1")
        )
    events = stored_events(intake)
    assert len(events) == before + 1
    mismatch = events[-1]
    assert type(mismatch).__name__ == "LabelMismatchRecorded"
    assert mismatch.reason_code == reason and mismatch.expected_din == din
    assert _unit_status(intake, coi, din) == "labelled"


def test_the_same_user_twice_is_refused_and_recorded() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    with pytest.raises(Refused, match=r"same-user.*a second, different user"):
        intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    assert type(stored_events(intake)[-1]).__name__ == "LabelMismatchRecorded"
    assert _unit_status(intake, coi, din) == "first-scan-done"
    assert intake.app.verify_label(coi, din, din, coi, proof("u-2"), operator("u-2")) is True


def test_a_mismatch_after_the_first_scan_keeps_the_first_scan() -> None:
    intake = build_intake()
    coi, [din, other] = labelled(intake, count=2)
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    with pytest.raises(Refused, match="din-mismatch"):
        intake.app.verify_label(coi, din, other, coi, proof("u-2"), operator("u-2"))
    assert _unit_status(intake, coi, din) == "first-scan-done"


def test_a_verified_unit_is_not_scanned_again() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-1"))
    intake.app.verify_label(coi, din, din, coi, proof("u-2"), operator("u-2"))
    with pytest.raises(Refused, match="already verified"):
        intake.app.verify_label(coi, din, din, coi, proof("u-3"), operator("u-3"))


def test_verifying_an_unknown_or_malformed_unit() -> None:
    intake = build_intake()
    coi, _ = labelled(intake)
    with pytest.raises(NotFound, match="no unit"):
        intake.app.verify_label(coi, "A12342599999900", "x", coi, proof(), operator())
    with pytest.raises(InvalidInput):
        intake.app.verify_label(coi, "bad", "x", coi, proof(), operator())
