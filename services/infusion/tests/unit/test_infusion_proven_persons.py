"""Proven persons in the two-person checks at the bedside (issue 13 item 2): each bedside scan
carries the scanning nurse's re-authentication, the infusion its witness's, against the site's
signer store; the persons recorded are the proven signers and the events carry their
manifestations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from v2v_infusion.adapters.payloads import (
    TRANSLATOR,
    bedside_scan_recorded,
    bedside_verified,
    infusion_administered,
)
from v2v_infusion.application import InfusionApplication
from v2v_infusion.domain.bedside import bedside_record, infusion_record
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import ScanRefused
from v2v_platform.errors import Forbidden, InvalidInput, ReauthenticationFailed, Refused
from v2v_platform.esign import MAX_FAILURES, SignatureRequest, record_hash
from v2v_testkit.infusion import (
    COI,
    FIRST_NURSE,
    PASSWORD,
    PHYSICIAN_ID,
    SECOND_NURSE,
    Clock,
    InMemoryFacts,
    administration,
    kinds,
    nurse,
    password_of,
    physician,
    product_din,
    receive_released,
    scan,
    scanning,
    stored_events,
    verify_at_bedside,
    witnessing,
)


def _status(app: InfusionApplication, din: str) -> str:
    return str(app.repository.get(ProductAtSite.create_id("HOSP-A", din[:13])).status.value)


def test_two_proven_nurses_verify_and_a_proven_witness_attends_the_infusion(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    app.administer_infusion(administration(din), nurse(FIRST_NURSE))

    recorded, verified, infused = stored_events(app)[-3:]
    assert isinstance(recorded, ProductAtSite.BedsideScanRecorded)
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert isinstance(infused, ProductAtSite.InfusionAdministered)
    scanned = record_hash(bedside_record(din, COI, clock.now))
    assert recorded.signature is not None and verified.second_signature is not None
    assert recorded.signature["user_id"] == FIRST_NURSE
    assert recorded.signature["meaning"] == "verification"
    assert recorded.signature["record_hash"] == scanned
    assert verified.first_signature == recorded.signature
    assert verified.second_signature["user_id"] == SECOND_NURSE
    assert verified.second_signature["printed_name"] == "Nurse u-nurse-2"
    assert verified.second_signature["record_hash"] == scanned
    witness = infused.witness_signature
    assert witness is not None and witness["user_id"] == SECOND_NURSE
    assert witness["meaning"] == "witness"
    unit: ProductAtSite = app.repository.get(ProductAtSite.create_id("HOSP-A", din[:13]))
    infusion = infusion_record(unit, clock.now, 1.0e6, 70.0, FIRST_NURSE)
    assert witness["record_hash"] == record_hash(infusion)
    assert infused.witnessed_by == {"user_id": SECOND_NURSE, "printed_name": "Nurse u-nurse-2"}

    assert bedside_scan_recorded(recorded).signature.user_id == FIRST_NURSE
    published = bedside_verified(verified)
    assert (published.first_signature.user_id, published.second_signature.user_id) == (
        FIRST_NURSE,
        SECOND_NURSE,
    )
    assert infusion_administered(infused).witness_signature.meaning == "witness"
    meanings = {}
    for event in (recorded, verified, infused):
        outbound = TRANSLATOR.translate(event)
        assert outbound is not None and outbound.content.schema_version == 2
        meanings[type(event).__name__] = outbound.content.signature_meaning
    assert meanings == {
        "BedsideScanRecorded": "verification",
        "BedsideVerified": "verification",
        "InfusionAdministered": "witness",
    }


def test_one_nurse_cannot_make_both_bedside_scans_with_their_one_password(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    scan(app, din, FIRST_NURSE)
    before = kinds(app)
    with pytest.raises(ReauthenticationFailed, match="re-authentication of 'u-nurse-2' failed"):
        app.scan_at_bedside(
            COI, din, None, scanning(SECOND_NURSE, password_of(FIRST_NURSE)), nurse(SECOND_NURSE)
        )
    with pytest.raises(InvalidInput, match=r"operator\.user_id 'u-nurse-2' is not .*'u-nurse'"):
        app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(SECOND_NURSE))
    assert kinds(app) == before
    with pytest.raises(ScanRefused, match="same-user"):
        scan(app, din, FIRST_NURSE)
    assert kinds(app) == [*before, "ProductAtSite.BedsideMismatchRecorded"]
    assert _status(app, din) == "first-scan-recorded"


def test_a_second_scan_with_a_wrong_password_is_refused_and_records_nothing(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    scan(app, din, FIRST_NURSE)
    before = kinds(app)
    wrong = scanning(SECOND_NURSE, "not the password of u-nurse-2")
    with pytest.raises(ReauthenticationFailed, match="u-nurse-2"):
        app.scan_at_bedside(COI, din, None, wrong, nurse(SECOND_NURSE))
    assert kinds(app) == before and _status(app, din) == "first-scan-recorded"
    assert scan(app, din, SECOND_NURSE).outcome == "verified"


def test_a_refused_scan_by_an_unproven_person_records_nothing_anywhere(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    wrong = scanning(FIRST_NURSE, "guessed password")
    with pytest.raises(ReauthenticationFailed):
        app.scan_at_bedside(COI, "NOT-A-DIN", None, wrong, nurse(FIRST_NURSE))
    assert stored_events(app) == []
    assert app.unpublished.recorder.select_notifications(1, 10) == []


def test_the_operator_must_be_the_re_authenticated_scanner(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"operator\.user_id 'u-third' is not"):
        app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse("u-third"))
    assert kinds(app) == before and _status(app, din) == "received"


def test_the_scanner_recorded_is_the_proven_signer_with_their_registered_name(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    claimed = replace(nurse(FIRST_NURSE), printed_name="Somebody Else")
    app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), claimed)
    recorded = stored_events(app)[-1]
    assert recorded.actor["printed_name"] == "Nurse u-nurse"
    with pytest.raises(ScanRefused, match="coi-mismatch"):
        other = "CHA123425000018"
        app.scan_at_bedside(other, din, None, scanning(SECOND_NURSE), nurse(SECOND_NURSE))
    refused = stored_events(app)[-1]
    assert refused.actor == {**refused.actor, "user_id": SECOND_NURSE}
    assert refused.actor["printed_name"] == "Nurse u-nurse-2"


def test_a_physician_without_the_nurse_signer_role_may_not_scan(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    request = SignatureRequest(PHYSICIAN_ID, PASSWORD, "verification")
    with pytest.raises(Forbidden, match="may not sign as nurse"):
        app.scan_at_bedside(COI, din, None, request, physician())
    assert _status(app, din) == "received"


def test_a_scan_signed_with_another_meaning_is_refused_naming_the_field(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    witness_meaning = witnessing(FIRST_NURSE)
    with pytest.raises(InvalidInput, match=r"signature\.meaning must be 'verification'"):
        app.scan_at_bedside(COI, din, None, witness_meaning, nurse(FIRST_NURSE))


def test_a_witness_who_is_not_re_authenticated_is_refused_and_nothing_is_infused(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    before = kinds(app)
    unproven = replace(administration(din), witness_signature=witnessing(SECOND_NURSE, "guess"))
    with pytest.raises(ReauthenticationFailed, match="re-authentication of 'u-nurse-2' failed"):
        app.administer_infusion(unproven, nurse(FIRST_NURSE))
    # the administrator re-authenticating for the witness they name
    signed_by_me = replace(administration(din), witness_signature=witnessing(FIRST_NURSE))
    with pytest.raises(InvalidInput, match=r"witnessed_by\.user_id 'u-nurse-2' is not"):
        app.administer_infusion(signed_by_me, nurse(FIRST_NURSE))
    scanned_not_witnessed = replace(administration(din), witness_signature=scanning(SECOND_NURSE))
    with pytest.raises(InvalidInput, match=r"witness_signature\.meaning must be 'witness'"):
        app.administer_infusion(scanned_not_witnessed, nurse(FIRST_NURSE))
    assert kinds(app) == before and _status(app, din) == "verified"
    app.administer_infusion(administration(din), nurse(FIRST_NURSE))
    assert _status(app, din) == "infused"


def test_the_same_person_as_administrator_and_witness_is_refused_as_before(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    with pytest.raises(Refused, match="one of them administers it and the other witnesses"):
        app.administer_infusion(administration(din, witness=FIRST_NURSE), nurse(FIRST_NURSE))
    assert _status(app, din) == "verified"


def test_a_nurse_is_locked_out_after_repeated_failed_re_authentications(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    wrong = scanning(FIRST_NURSE, "guessed password")
    for _ in range(MAX_FAILURES):
        with pytest.raises(ReauthenticationFailed, match="failed"):
            app.scan_at_bedside(COI, din, None, wrong, nurse(FIRST_NURSE))
    with pytest.raises(ReauthenticationFailed, match="locked"):
        scan(app, din, FIRST_NURSE)
    assert _status(app, din) == "received"


def test_bedside_and_infusion_events_stored_before_persons_were_proven_still_read(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    """Stored as class version 1 (no manifestations), they are upcast: no signature, as
    consumers already saw them."""
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    app.administer_infusion(administration(din), nurse(FIRST_NURSE))
    names = ("BedsideScanRecorded", "BedsideVerified", "InfusionAdministered")
    old = []
    for stored in app.recorder.select_notifications(1, 1000):
        if not stored.topic.endswith(tuple(f":ProductAtSite.{name}" for name in names)):
            continue
        state = app.mapper.transcoder.decode(stored.state)
        assert state.pop("class_version") == 2 and state.pop("signature_meaning")
        for field in ("signature", "first_signature", "second_signature", "witness_signature"):
            state.pop(field, None)
        old.append(replace(stored, state=app.mapper.transcoder.encode(state)))
    recorded, verified, infused = (app.mapper.to_domain_event(n) for n in old)
    assert isinstance(recorded, ProductAtSite.BedsideScanRecorded) and recorded.signature is None
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert (verified.first_signature, verified.second_signature) == (None, None)
    assert isinstance(infused, ProductAtSite.InfusionAdministered)
    assert infused.witness_signature is None and infused.witnessed_by["user_id"] == SECOND_NURSE
    assert not bedside_scan_recorded(recorded).HasField("signature")
    assert not bedside_verified(verified).HasField("second_signature")
    assert not infusion_administered(infused).HasField("witness_signature")
    assert bedside_verified(verified).second_user.user_id == SECOND_NURSE


def test_a_scanner_signs_the_labels_in_their_canonical_form(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """The scanner signs the labels in their canonical form: a DIN scanned with surrounding
    blanks is signed (and recorded) as the unit's DIN."""
    din = receive_released(app, facts, n=2)
    assert din == product_din(2)
    scan(app, f"  {din} ", FIRST_NURSE)
    recorded = stored_events(app)[-1]
    assert recorded.signature["record_hash"] == record_hash(bedside_record(din, COI, clock.now))
