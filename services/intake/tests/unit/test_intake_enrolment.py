"""Enrolment, COI issue (once, never repeated), personal details and crypto-shredding."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from v2v_intake.adapters.payloads import TRANSLATOR
from v2v_intake.domain.values import PersonalDetails
from v2v_platform.auth import Role
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.ids import Coi
from v2v_testkit.intake import (
    DETAILS,
    FIN,
    Intake,
    build_intake,
    enrolled,
    operator,
    reader,
    stored_events,
)


def test_enrolment_issues_a_ds040_coi_with_the_fin_and_year() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    assert coi == f"CH{FIN}25000001"
    assert Coi.parse(coi).value == coi
    view = intake.app.get_patient(coi, reader("HOSP-A"))
    assert (view.patient_pseudonym, view.enrolling_site_id) == ("PSN-0001", "HOSP-A")
    assert view.personal_details == DETAILS


def test_each_enrolment_gets_a_new_coi() -> None:
    intake = build_intake()
    cois = [enrolled(intake, f"PSN-{n}") for n in range(5)]
    assert len(set(cois)) == 5


def test_concurrent_enrolments_never_share_a_coi() -> None:
    intake = build_intake()
    with ThreadPoolExecutor(max_workers=16) as pool:
        cois = list(pool.map(lambda n: enrolled(intake, f"PSN-{n}"), range(80)))
    assert len(set(cois)) == 80
    assert sorted(int(c[-6:]) for c in cois) == list(range(1, 81))


def test_the_same_pseudonym_is_refused_while_its_therapy_is_open() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    with pytest.raises(Refused, match=f"already has an open therapy {coi}"):
        enrolled(intake)


def test_concurrent_enrolments_of_one_pseudonym_succeed_once() -> None:
    intake = build_intake()
    barrier = threading.Barrier(8)

    def attempt(_: int) -> str:
        barrier.wait()
        try:
            return enrolled(intake, "PSN-SAME")
        except Refused:
            return "refused"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert len([o for o in outcomes if o != "refused"]) == 1


def test_an_interrupted_enrolment_is_completed_with_its_reserved_coi() -> None:
    intake = build_intake()
    intake.unpublished.claim_pseudonym("PSN-CRASH", lambda: "CHA123425000777")
    assert enrolled(intake, "PSN-CRASH") == "CHA123425000777"


def test_after_erasure_the_pseudonym_may_start_a_new_therapy() -> None:
    intake = build_intake()
    first = enrolled(intake)
    intake.app.erase_personal_details(first, operator(reason="consent withdrawn"))
    assert enrolled(intake) != first


@pytest.mark.parametrize(
    ("pseudonym", "details", "message"),
    [
        ("  ", DETAILS, "pseudonym is required"),
        ("PSN-1", PersonalDetails("A", "B", "M", date(2031, 1, 1)), "birth date is in the future"),
    ],
)
def test_invalid_enrolments_are_refused(
    pseudonym: str, details: PersonalDetails, message: str
) -> None:
    intake = build_intake()
    with pytest.raises(InvalidInput, match=message):
        intake.app.enrol_patient(pseudonym, details, "HOSP-A", operator())


def test_personal_details_need_every_field() -> None:
    with pytest.raises(InvalidInput, match="mrn is required"):
        PersonalDetails("Ada", "Example", " ", date(1970, 1, 1))


def test_another_site_cannot_command_this_intake() -> None:
    intake = build_intake()
    with pytest.raises(Forbidden, match="records for site HOSP-A, not HOSP-C"):
        intake.app.enrol_patient("PSN-1", DETAILS, "HOSP-A", operator(site_id="HOSP-C"))


def test_reads_by_site_and_role() -> None:
    intake = build_intake()
    coi = intake.app.enrol_patient("PSN-1", DETAILS, "HOSP-T", operator())
    assert intake.app.get_patient(coi, reader("HOSP-T")).personal_details is None
    assert intake.app.get_patient(coi, reader("AUDIT-X", Role.AUDITOR)).personal_details is None
    with pytest.raises(NotFound, match="is visible to site HOSP-C"):  # as if it did not exist
        intake.app.get_patient(coi, reader("HOSP-C"))
    with pytest.raises(NotFound):
        intake.app.get_patient("CHA123425999999", reader("HOSP-A"))
    with pytest.raises(InvalidInput):
        intake.app.get_patient("not-a-coi", reader("HOSP-A"))


def _stored_bytes(intake: Intake) -> bytes:
    return b"".join(n.state for n in intake.app.recorder.select_notifications(1, 1000))


def test_no_stored_or_published_event_holds_personal_data_in_clear() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    stored = _stored_bytes(intake)
    outbound = [TRANSLATOR.translate(e) for e in stored_events(intake)]
    published = b"".join(o.content.payload.SerializeToString() for o in outbound if o)
    for secret in (b"Marguerite", b"Zylberstein", b"MRN-778899", b"1971-05-02"):
        assert secret not in stored
        assert secret not in published
    assert coi.encode() in stored


def test_erasure_shreds_the_key_and_keeps_every_event() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    before = intake.app.recorder.select_notifications(1, 1000)
    intake.app.erase_personal_details(coi, operator(reason="patient request (GDPR art. 17)"))
    after = intake.app.recorder.select_notifications(1, 1000)
    assert [n.state for n in after[: len(before)]] == [n.state for n in before]
    assert type(stored_events(intake)[-1]).__name__ == "PersonalDetailsErased"
    assert intake.keys.get(coi) is None
    view = intake.app.get_patient(coi, reader("HOSP-A"))
    assert view.personal_details is None and view.personal_details_erased


def test_erasure_needs_a_reason_and_is_recorded_once() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    with pytest.raises(InvalidInput, match="needs a reason"):
        intake.app.erase_personal_details(coi, operator())
    intake.app.erase_personal_details(coi, operator(reason="withdrawn"))
    intake.app.erase_personal_details(coi, operator(reason="withdrawn"))
    assert len(intake.app.recorder.select_notifications(1, 1000)) == 2


def test_an_erased_therapy_takes_no_further_commands() -> None:
    intake = build_intake()
    coi = enrolled(intake)
    intake.app.erase_personal_details(coi, operator(reason="withdrawn"))
    with pytest.raises(Refused, match="closed"):
        intake.app.book_slot(coi, "GMP-B", date(2025, 3, 20), operator())
