"""Proven persons in the two-person label verification (issue 13 item 2): each scan carries
the scanning person's re-authentication against the site's signer store; the person recorded
is the proven signer, and the verification events carry both manifestations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from v2v_intake.adapters.payloads import TRANSLATOR, label_scanned, label_verified
from v2v_intake.domain.labels import verification_record
from v2v_intake.domain.therapy import Therapy
from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed, Refused
from v2v_platform.esign import MAX_FAILURES, SignatureRequest, record_hash
from v2v_testkit.intake import (
    CLERK,
    Intake,
    build_intake,
    labelled,
    operator,
    password_of,
    proof,
    reader,
    scan,
    stored_events,
)


def _status(intake: Intake, coi: str, din: str) -> str:
    [unit] = [u for u in intake.app.get_patient(coi, reader("HOSP-A")).units if u.din == din]
    return unit.status


def _kinds(intake: Intake) -> list[str]:
    return [type(event).__name__ for event in stored_events(intake)]


def test_two_proven_people_verify_a_label_and_both_manifestations_are_on_the_events() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    assert scan(intake, coi, din, "u-1") is False
    assert scan(intake, coi, din, "u-2") is True

    scanned, verified = stored_events(intake)[-2:]
    assert isinstance(scanned, Therapy.LabelScanned)
    assert isinstance(verified, Therapy.LabelVerified)
    signed = record_hash(verification_record(coi, din))
    assert scanned.signature is not None and verified.second_signature is not None
    assert scanned.signature["user_id"] == "u-1" and scanned.signature["meaning"] == "verification"
    assert scanned.signature["record_hash"] == signed
    assert verified.first_signature == scanned.signature
    assert verified.second_signature["user_id"] == "u-2"
    assert verified.second_signature["printed_name"] == "Operator u-2"
    assert verified.second_signature["record_hash"] == signed
    assert (verified.first_user_id, verified.second_user_id) == ("u-1", "u-2")

    published = label_verified(verified)
    assert published.first_signature.user_id == "u-1"
    assert published.second_signature.user_id == "u-2"
    assert published.second_signature.meaning == "verification"
    assert label_scanned(scanned).signature.record_hash == signed
    outbound = TRANSLATOR.translate(verified)
    assert outbound is not None and outbound.content.signature_meaning == "verification"
    assert outbound.content.schema_version == 2


def test_one_person_cannot_make_both_scans_with_their_one_password() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    scan(intake, coi, din, "u-1")
    before = _kinds(intake)
    # claiming to be u-2 with u-1's own password: u-2 is not re-authenticated
    with pytest.raises(ReauthenticationFailed, match="re-authentication of 'u-2' failed"):
        intake.app.verify_label(
            coi, din, din, coi, proof("u-2", password_of("u-1")), operator("u-2")
        )
    # claiming to be u-2 while re-authenticating as u-1: the operator is not the signer
    with pytest.raises(InvalidInput, match=r"operator\.user_id 'u-2' is not .* signer 'u-1'"):
        intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-2"))
    assert _kinds(intake) == before
    # as themselves a second time: the same person twice (recorded, as before)
    with pytest.raises(Refused, match="same-user"):
        scan(intake, coi, din, "u-1")
    assert _kinds(intake) == [*before, "LabelMismatchRecorded"]
    assert _status(intake, coi, din) == "first-scan-done"


def test_a_second_scan_with_a_wrong_password_is_refused_and_records_nothing() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    scan(intake, coi, din, "u-1")
    before = _kinds(intake)
    wrong = proof("u-2", "not the password of u-2")
    with pytest.raises(ReauthenticationFailed, match="u-2"):
        intake.app.verify_label(coi, din, din, coi, wrong, operator("u-2"))
    assert _kinds(intake) == before and "LabelVerified" not in before
    assert _status(intake, coi, din) == "first-scan-done"
    assert scan(intake, coi, din, "u-2") is True  # with their own password


def test_the_operator_must_be_the_re_authenticated_signer() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    before = _kinds(intake)
    with pytest.raises(InvalidInput, match=r"operator\.user_id 'u-3' is not"):
        intake.app.verify_label(coi, din, din, coi, proof("u-1"), operator("u-3"))
    assert _kinds(intake) == before and _status(intake, coi, din) == "labelled"


def test_the_person_recorded_is_the_proven_signer_with_their_registered_name() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    claimed = replace(operator("u-1"), printed_name="Somebody Else")
    intake.app.verify_label(coi, din, din, coi, proof("u-1"), claimed)
    scanned = stored_events(intake)[-1]
    assert scanned.actor["user_id"] == "u-1" and scanned.actor["printed_name"] == "Operator u-1"


def test_a_refused_scan_is_recorded_under_the_proven_signer() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    with pytest.raises(Refused, match="coi-mismatch"):
        scan(intake, coi, din, "u-2", (din, "CHA123425000999"))
    mismatch = stored_events(intake)[-1]
    assert isinstance(mismatch, Therapy.LabelMismatchRecorded)
    assert mismatch.actor["user_id"] == "u-2" and mismatch.actor["printed_name"] == "Operator u-2"


def test_a_signer_without_the_collection_role_may_not_verify() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    with pytest.raises(Forbidden, match="may not sign as collection"):
        intake.app.verify_label(coi, din, din, coi, proof(CLERK), operator(CLERK))
    assert _status(intake, coi, din) == "labelled"


def test_a_signature_of_another_meaning_is_refused_naming_the_field() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    approval = SignatureRequest("u-1", password_of("u-1"), "approval")
    with pytest.raises(InvalidInput, match=r"signature\.meaning must be 'verification'"):
        intake.app.verify_label(coi, din, din, coi, approval, operator("u-1"))


def test_a_scanner_is_locked_out_after_repeated_failed_re_authentications() -> None:
    intake = build_intake()
    coi, [din] = labelled(intake)
    wrong = proof("u-1", "guessed password")
    for _ in range(MAX_FAILURES):
        with pytest.raises(ReauthenticationFailed, match="failed"):
            intake.app.verify_label(coi, din, din, coi, wrong, operator("u-1"))
    with pytest.raises(ReauthenticationFailed, match="locked"):
        scan(intake, coi, din, "u-1")
    assert _status(intake, coi, din) == "labelled"
    assert scan(intake, coi, din, "u-2") is False  # another person is not locked


def test_label_events_stored_before_scanners_re_authenticated_still_read() -> None:
    """LabelScanned and LabelVerified stored as class version 1 (no manifestation) are upcast:
    no signature, as consumers already saw them."""
    intake = build_intake()
    coi, [din] = labelled(intake)
    scan(intake, coi, din, "u-1")
    scan(intake, coi, din, "u-2")
    notifications = intake.app.recorder.select_notifications(1, 1000)
    old = []
    for stored in notifications:
        if not stored.topic.endswith((":Therapy.LabelScanned", ":Therapy.LabelVerified")):
            continue
        state = intake.app.mapper.transcoder.decode(stored.state)
        assert state.pop("class_version") == 2 and state.pop("signature_meaning")
        for name in ("signature", "first_signature", "second_signature"):
            state.pop(name, None)
        old.append(replace(stored, state=intake.app.mapper.transcoder.encode(state)))
    scanned, verified = (intake.app.mapper.to_domain_event(n) for n in old)
    assert isinstance(scanned, Therapy.LabelScanned) and scanned.signature is None
    assert isinstance(verified, Therapy.LabelVerified)
    assert (verified.first_signature, verified.second_signature) == (None, None)
    assert not label_verified(verified).HasField("first_signature")
    assert not label_scanned(scanned).HasField("signature")
    assert (verified.first_user_id, verified.second_user_id) == ("u-1", "u-2")
