"""Two-person bedside verification (I2, I4, I5): every refusal is recorded with its reason
code (on the unit here, else the chain at risk, else the unpublished records) and nothing else
changes; checks run in a fixed order; the first good scan is recorded, the second by another
user verifies the unit for infusion."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from v2v_infusion.application import InfusionApplication
from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.mismatches import BedsideMismatch, UnattributableScan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import ReleaseStatus, ScanRefused
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.conditions import Condition
from v2v_platform.ids import Coi
from v2v_platform.protocol_rules import ProtocolRules
from v2v_testkit.infusion import (
    BATCH,
    COI,
    FIRST_NURSE,
    OTHER_COI,
    OTHER_SITE,
    PHYSICIAN_ID,
    PHYSICIAN_NAME,
    RELEASED_AT,
    SECOND_NURSE,
    SIGNATURE_REQUEST,
    Clock,
    InMemoryFacts,
    administration,
    build_app,
    nurse,
    physician,
    product_din,
    receive_released,
    scanning,
    stored_events,
    verify_at_bedside,
)

MISMATCHES = (ProductAtSite.BedsideMismatchRecorded, BedsideMismatch.Recorded)


def refused_scan(
    app: InfusionApplication, wristband: str, din: str, code: str, by: Attribution | None = None
) -> Any:
    """The scan is refused with `code`; exactly one mismatch event is recorded, on a valid
    COI, and nothing else changes. Returns that event."""
    before = stored_events(app)
    unit_id = ProductAtSite.create_id("HOSP-A", din[:13])
    status = app.repository.get(unit_id).status if unit_id in app.repository else None
    with pytest.raises(ScanRefused, match=code) as refused:
        by = by or nurse()
        app.scan_at_bedside(wristband, din, None, scanning(by.user_id), by)
    assert refused.value.reason_code == code
    new = stored_events(app)[len(before) :]
    [mismatch] = new
    assert isinstance(mismatch, MISMATCHES)
    assert (mismatch.reason_code, mismatch.scanned_din, mismatch.wristband_coi) == (
        code,
        din,
        wristband,
    )
    assert Coi.parse(mismatch.coi).value == mismatch.coi
    if status is not None:
        assert app.repository.get(unit_id).status == status  # nothing else changed
    return mismatch


def test_two_different_users_verify_a_fresh_unit(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts)
    first = app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(FIRST_NURSE))
    assert (first.outcome, first.unit.status) == ("first-scan-recorded", "first-scan-recorded")
    second = app.scan_at_bedside(COI, din, None, scanning(SECOND_NURSE), nurse(SECOND_NURSE))
    assert (second.outcome, second.unit.status) == ("verified", "verified")
    recorded, verified = stored_events(app)[-2:]
    assert isinstance(recorded, ProductAtSite.BedsideScanRecorded)
    assert (recorded.wristband_coi, recorded.actor["user_id"]) == (COI, FIRST_NURSE)
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert verified.first_user == {"user_id": FIRST_NURSE, "printed_name": "Nurse u-nurse"}
    assert verified.second_user["user_id"] == SECOND_NURSE
    assert (verified.release_basis, verified.verified_at) == ("provisional", clock.now)
    assert verified.infuse_by == RELEASED_AT + timedelta(hours=72)
    assert second.unit.infuse_by == verified.infuse_by
    assert verified.protocol_rules == "v1"


def test_a_fresh_unit_is_verified_to_the_fresh_product_window_this_site_applies(
    facts: InMemoryFacts, clock: Clock
) -> None:
    rules = ProtocolRules(fresh_product=timedelta(hours=48))
    app = build_app(facts, clock, rules=rules)
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    verified = stored_events(app)[-1]
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert verified.infuse_by == RELEASED_AT + timedelta(hours=48)
    assert verified.protocol_rules == rules.tag != "v1"


def test_a_thawing_cryo_unit_is_verified_within_its_post_thaw_window(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts, condition=Condition.CRYO)
    facts.release(status=ReleaseStatus.FINAL)
    clock.advance(minutes=10)
    verify_at_bedside(app, din)
    verified = stored_events(app)[-1]
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert verified.infuse_by == clock.now - timedelta(minutes=10) + timedelta(minutes=30)
    assert verified.release_basis == "final"
    assert verified.protocol_rules == "v1"


def test_a_further_good_scan_of_a_verified_unit_changes_nothing(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    count = len(stored_events(app))
    assert (
        app.scan_at_bedside(COI, din, None, scanning("u-third"), nurse("u-third")).outcome
        == "verified"
    )
    assert len(stored_events(app)) == count


def test_malformed_unit_label_with_a_valid_wristband_is_recorded_on_the_wristband_chain(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.enrol()  # the wristband's patient is treated here (another site's: unpublished)
    mismatch = refused_scan(app, COI, "not-a-din", "malformed-label")
    assert isinstance(mismatch, BedsideMismatch.Recorded) and mismatch.coi == COI


def test_malformed_wristband_for_a_unit_here_is_recorded_on_the_unit(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    mismatch = refused_scan(app, "CH-not-a-coi", din, "malformed-label")
    assert isinstance(mismatch, ProductAtSite.BedsideMismatchRecorded) and mismatch.coi == COI


def test_a_scan_naming_no_chain_is_kept_in_the_unpublished_records_only(
    app: InfusionApplication,
) -> None:
    with pytest.raises(ScanRefused, match="malformed-label"):
        app.scan_at_bedside("CH-bad", "bad-din", None, scanning(), nurse())
    assert stored_events(app) == []
    notifications = app.unpublished.recorder.select_notifications(1, 10)
    [scan] = [app.unpublished.mapper.to_domain_event(n) for n in notifications]
    assert isinstance(scan, UnattributableScan.Recorded)
    assert (scan.scan_kind, scan.reason_code, scan.wristband_coi) == (
        "bedside",
        "malformed-label",
        "CH-bad",
    )


def test_an_unknown_unit_is_refused_on_the_wristband_chain(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.enrol(OTHER_COI)  # the wristband's patient is treated here (another site's: unpublished)
    mismatch = refused_scan(app, OTHER_COI, product_din(9), "unknown-unit")
    assert isinstance(mismatch, BedsideMismatch.Recorded) and mismatch.coi == OTHER_COI


def test_a_unit_not_received_here_is_refused_on_its_own_chain(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.create_products([product_din(2)])
    facts.release()
    mismatch = refused_scan(app, OTHER_COI, product_din(2), "not-received")
    assert isinstance(mismatch, BedsideMismatch.Recorded) and mismatch.coi == COI


def test_another_patients_wristband_is_refused(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    mismatch = refused_scan(app, OTHER_COI, din, "coi-mismatch")
    assert isinstance(mismatch, ProductAtSite.BedsideMismatchRecorded)
    assert mismatch.coi == COI  # the unit's chain is the one at risk
    assert "STOP" in mismatch.explanation


def test_a_rejected_batch_is_refused(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = receive_released(app, facts)
    facts.release(status=ReleaseStatus.REJECTED)
    refused_scan(app, COI, din, "rejected")


def test_an_unreleased_batch_is_refused(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = receive_released(app, facts)
    facts.releases.clear()
    refused_scan(app, COI, din, "not-released")


def test_an_unacknowledged_post_release_failure_is_refused_until_acknowledged_here(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    facts.enrol()
    alert = facts.fail(dins=[din])
    mismatch = refused_scan(app, COI, din, "unacknowledged-failure")
    assert alert.failure_id in mismatch.explanation
    decision = "infuse with antibiotic cover"
    app.acknowledge_alert(alert.failure_id, decision, SIGNATURE_REQUEST, physician())
    assert app.scan_at_bedside(COI, din, None, scanning(), nurse()).outcome == "first-scan-recorded"


def test_an_acknowledgement_at_another_site_does_not_count_here(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """Acknowledgements are per site: one by another site (even were it in this store) does
    not unblock this site's units. (Before issue 13 the patient was enrolled for the other
    site here; such a unit is now refused as `not-treating-site` before any failure check.)"""
    din = receive_released(app, facts)
    alert = facts.fail(dins=[din])
    signature = SignatureManifestation(PHYSICIAN_ID, PHYSICIAN_NAME, "responsibility", clock.now)
    elsewhere = Attribution(PHYSICIAN_ID, PHYSICIAN_NAME, "infusion", OTHER_SITE)
    app.save(FailureAcknowledgement.acknowledge(alert, "noted", signature, clock.now, elsewhere))
    refused_scan(app, COI, din, "unacknowledged-failure")


def test_a_fresh_unit_past_its_window_from_release_is_refused(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts)
    clock.now = RELEASED_AT + timedelta(hours=72, minutes=1)
    mismatch = refused_scan(app, COI, din, "window-expired")
    assert (RELEASED_AT + timedelta(hours=72)).isoformat() in mismatch.explanation


def test_a_cryo_unit_that_is_not_thawing_is_refused(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = product_din(3)
    facts.create_products([din], condition=Condition.CRYO)
    facts.release()
    app.receive_product(din, None, nurse())
    mismatch = refused_scan(app, COI, din, "window-expired")
    assert "not thawing" in mismatch.explanation


def test_a_cryo_unit_past_its_post_thaw_window_is_refused(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = receive_released(app, facts, condition=Condition.CRYO)
    app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(FIRST_NURSE))
    clock.advance(minutes=31)
    refused_scan(app, COI, din, "window-expired", nurse(SECOND_NURSE))


def test_an_infused_unit_is_refused(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = receive_released(app, facts)
    verify_at_bedside(app, din)
    given = administration(din)
    app.administer_infusion(given, nurse(FIRST_NURSE))
    refused_scan(app, COI, din, "already-infused")


def test_the_same_user_cannot_make_both_scans(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    app.scan_at_bedside(COI, din, None, scanning(FIRST_NURSE), nurse(FIRST_NURSE))
    refused_scan(app, COI, din, "same-user", nurse(FIRST_NURSE))
    assert (
        app.scan_at_bedside(COI, din, None, scanning(SECOND_NURSE), nurse(SECOND_NURSE)).outcome
        == "verified"
    )


@pytest.mark.parametrize(
    ("wristband", "status", "expected"),
    [
        (OTHER_COI, ReleaseStatus.NONE, "coi-mismatch"),  # identity first
        (COI, ReleaseStatus.REJECTED, "rejected"),  # before failures and window
    ],
)
def test_the_first_failing_check_is_the_reason(
    app: InfusionApplication,
    facts: InMemoryFacts,
    clock: Clock,
    wristband: str,
    status: ReleaseStatus,
    expected: str,
) -> None:
    din = receive_released(app, facts)
    facts.release(BATCH, status)
    facts.fail(dins=[din])
    clock.advance(days=10)
    refused_scan(app, wristband, din, expected)


def test_two_nurses_scanning_at_once_record_one_first_scan_and_one_verification(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = receive_released(app, facts)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def scan(user: str) -> None:
        start.wait()
        outcomes.append(app.scan_at_bedside(COI, din, None, scanning(user), nurse(user)).outcome)

    threads = [threading.Thread(target=scan, args=(u,)) for u in (FIRST_NURSE, SECOND_NURSE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["first-scan-recorded", "verified"]
    recorded, verified = stored_events(app)[-2:]
    assert isinstance(recorded, ProductAtSite.BedsideScanRecorded)
    assert isinstance(verified, ProductAtSite.BedsideVerified)
    assert verified.first_user["user_id"] != verified.second_user["user_id"]
