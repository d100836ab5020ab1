"""Courier scans and custody handoffs (I2, I3): every refusal is recorded, nothing else changes;
each idempotency key is applied once; late scans are flagged, not reordered. Custody passes
only from the holder who offered it, to a party of the shipment (issue 13): anyone else finds
no shipment and leaves no record."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.matching import ScanRefused
from v2v_platform.errors import NotFound
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    Clock,
    InMemoryCouriers,
    InMemoryFacts,
    attempt,
    build_app,
    courier,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
    offer,
    site_scope,
    site_user,
    stored_events,
)

FROM_SITE = f"site:{ORIGIN}"
C1, C2 = "courier:C-1", "courier:C-2"


@pytest.fixture
def shipped(app: LogisticsApplication, facts: InMemoryFacts) -> tuple[str, list[str]]:
    units = [facts.package(din(1)), facts.package(din(2))]
    return app.create_shipment(new_shipment(units), site_user()).shipment_id, units


def refused(app: LogisticsApplication, shipment_id: str, label: str, **kw: str) -> ScanRefused:
    clock = app.clock
    scan = attempt(kw.get("receiver", C1), kw.get("giver", FROM_SITE), clock(), label)
    before = app.courier_shipment(shipment_id, "C-1")
    with pytest.raises(ScanRefused) as refusal:
        app.scan(shipment_id, scan, courier())
    after = app.courier_shipment(shipment_id, "C-1")
    assert (after.shipment, after.scanned) == (before.shipment, before.scanned)  # nothing else
    last = stored_events(app)[-1]
    assert type(last).__name__ == "ScanMismatchRecorded"
    assert last.reason_code == refusal.value.reason_code and last.scanned_label == label
    assert last.idempotency_key == scan.idempotency_key
    return refusal.value


def test_a_courier_takes_the_shipment_after_scanning_every_unit(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    first = app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[0]), courier())
    assert (first.accepted, first.din, first.remaining, first.late) == (
        True,
        units[0],
        (units[1],),
        False,
    )
    assert app.courier_shipment(shipment_id, "C-1").scanned == [units[0]]
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[1]), courier())
    handed = app.hand_over(shipment_id, attempt(C1, FROM_SITE, clock()), courier())
    assert (handed.custodian, handed.status) == (C1, "picked-up")
    clock.advance(hours=1)
    app.assign_courier(shipment_id, "C-2", site_user())
    offered = offer(app, shipment_id, C1, C2, clock())
    assert (offered.custodian, offered.offered_to) == (C1, C2)
    onward = hand_to_courier(app, shipment_id, units, "C-2", C1, clock())
    assert (onward.custodian, onward.status) == (C2, "in-transit")


def test_unknown_unit_is_refused_and_recorded(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    assert refused(app, shipped[0], din(77)).reason_code == "unknown-unit"


def test_a_bag_of_another_coi_is_refused_and_recorded(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]]
) -> None:
    other = facts.package(din(30), coi=OTHER_COI)
    refusal = refused(app, shipped[0], other)
    assert refusal.reason_code == "other-coi" and OTHER_COI in str(refusal)


def test_a_unit_of_this_coi_not_on_the_manifest_is_extra(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]]
) -> None:
    assert refused(app, shipped[0], facts.package(din(3))).reason_code == "extra-unit"


def test_a_unit_scanned_twice_is_a_duplicate(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[0]), courier())
    assert refused(app, shipment_id, units[0]).reason_code == "duplicate-scan"


def test_a_label_that_is_no_din_is_malformed(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    assert refused(app, shipped[0], "HELLO").reason_code == "malformed-label"


def test_a_giver_who_is_not_the_custodian_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    refusal = refused(app, shipped[0], shipped[1][0], giver="courier:C-9")
    assert refusal.reason_code == "wrong-custodian"


def test_the_custodian_cannot_receive_from_itself(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    refusal = refused(app, shipped[0], shipped[1][0], receiver=FROM_SITE)
    assert refusal.reason_code == "wrong-state"


def test_a_handoff_with_a_missing_unit_is_refused_and_custody_stays(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[0]), courier())
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C1, FROM_SITE, clock()), courier())
    assert refusal.value.reason_code == "missing-unit"
    assert refusal.value.mismatch.missing_dins == (units[1],)
    assert units[1] in str(refusal.value)
    assert app.shipment(shipment_id, site_scope()).custodian == FROM_SITE
    assert kinds(app)[-1] == "ScanMismatchRecorded"


def test_a_handoff_from_a_non_custodian_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    app.assign_courier(shipment_id, "C-2", site_user())  # C-2 is a party: refused, recorded
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C2, FROM_SITE, clock()), courier("C-2"))
    assert refusal.value.reason_code == "wrong-custodian"
    assert app.shipment(shipment_id, site_scope()).custodian == C1


def test_no_scan_or_handoff_after_delivery(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    offer(app, shipment_id, C1, f"site:{DESTINATION}", clock())
    app.receive_shipment(shipment_id, units, C1, None, site_user("GMP-B", "manufacturing"))
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C1, "site:GMP-B", clock()), courier("C-1"))
    assert refusal.value.reason_code == "wrong-state"


def test_a_handoff_past_the_stability_window_is_refused_and_the_breach_recorded(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    clock.advance(hours=47)
    late = clock()  # collection end + 49 h
    for unit in units:
        app.scan(shipment_id, attempt(C1, FROM_SITE, late, unit), courier())
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C1, FROM_SITE, late), courier())
    assert refusal.value.reason_code == "window-breached"
    assert kinds(app)[-2:] == ["StabilityWindowBreached", "ScanMismatchRecorded"]
    assert app.shipment(shipment_id, site_scope()).window_breached
    assert app.shipment(shipment_id, site_scope()).custodian == FROM_SITE


def test_the_same_key_gets_the_same_answer_and_is_applied_once(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    scan = attempt(C1, FROM_SITE, clock(), units[0], key="k-1")
    first = app.scan(shipment_id, scan, courier())
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[1]), courier())
    again = app.scan(shipment_id, scan, courier())
    assert again == first and again.remaining == (units[1],)
    assert kinds(app).count("UnitScanned") == 2


def test_a_refused_key_is_refused_again_identically_without_a_second_record(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, _ = shipped
    scan = attempt(C1, FROM_SITE, clock(), din(77), key="k-2")
    answers = []
    for _ in range(2):
        with pytest.raises(ScanRefused) as refusal:
            app.scan(shipment_id, scan, courier())
        answers.append((refusal.value.reason_code, str(refusal.value)))
    assert answers[0] == answers[1]
    assert kinds(app).count("ScanMismatchRecorded") == 1


def test_a_queued_scan_older_than_an_accepted_one_is_accepted_but_flagged_late(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    clock.advance(minutes=10)  # both scans follow the shipment's creation (issue 14)
    app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), units[1]), courier())
    older = app.scan(
        shipment_id, attempt(C1, FROM_SITE, clock() - timedelta(minutes=5), units[0]), courier()
    )
    assert older.accepted and older.late
    assert [e.late for e in stored_events(app) if type(e).__name__ == "UnitScanned"] == [
        False,
        True,
    ]


def test_couriers_see_what_is_assigned_to_them_until_delivery(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    assert [s.shipment.shipment_id for s in app.courier_shipments("C-1")] == [shipment_id]
    assert app.courier_shipments("C-2") == []
    app.assign_courier(shipment_id, "C-2", site_user())
    assert [s.shipment.shipment_id for s in app.courier_shipments("C-2")] == [shipment_id]
    hand_to_courier(app, shipment_id, units, "C-2", FROM_SITE, clock())
    offer(app, shipment_id, C2, f"site:{DESTINATION}", clock())
    app.receive_shipment(
        shipment_id, units, "courier:C-2", None, site_user("GMP-B", "manufacturing")
    )
    assert app.courier_shipments("C-2") == []


def assert_nothing_recorded(app: LogisticsApplication, before: list[str]) -> None:
    assert kinds(app) == before


def test_a_courier_the_shipment_is_not_assigned_to_finds_no_shipment(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    """Issue 13: courier C-3 on a shipment assigned to C-1 scanned, confirmed and held it."""
    shipment_id, units = shipped
    before = kinds(app)
    c3 = "courier:C-3"
    with pytest.raises(NotFound):
        app.scan(shipment_id, attempt(c3, FROM_SITE, clock(), units[0]), courier("C-3"))
    with pytest.raises(NotFound):
        app.hand_over(shipment_id, attempt(c3, FROM_SITE, clock()), courier("C-3"))
    with pytest.raises(NotFound):
        app.courier_shipment(shipment_id, "C-3")
    assert_nothing_recorded(app, before)
    assert app.shipment(shipment_id, site_scope()).custodian == FROM_SITE


def test_custody_passes_only_when_the_holder_offered_it(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    """Issue 13: `from_party` was a claim; the giver never authenticated."""
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    app.assign_courier(shipment_id, "C-2", site_user())  # the origin no longer holds it
    with pytest.raises(ScanRefused) as refusal:
        hand_to_courier(app, shipment_id, units, "C-2", C1, clock())
    assert refusal.value.reason_code == "not-offered"
    assert app.shipment(shipment_id, site_scope()).custodian == C1
    assert kinds(app)[-1] == "ScanMismatchRecorded"
    offer(app, shipment_id, C1, C2, clock())
    taken = app.hand_over(shipment_id, attempt(C2, "", clock()), courier("C-2"))
    assert (taken.custodian, taken.status) == (C2, "in-transit")
    handed = stored_events(app)[-1]
    assert (type(handed).__name__, handed.from_party, handed.to_party) == (
        "CustodyHandedOver",
        C1,
        C2,
    )


def test_only_the_holder_offers_and_only_to_a_party(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    with pytest.raises(ScanRefused) as not_holder:
        offer(app, shipment_id, FROM_SITE, f"site:{DESTINATION}", clock())
    assert not_holder.value.reason_code == "wrong-custodian"
    with pytest.raises(ScanRefused) as stranger:
        offer(app, shipment_id, C1, "courier:C-3", clock())
    assert stranger.value.reason_code == "not-a-party"
    before = kinds(app)
    with pytest.raises(NotFound):
        offer(app, shipment_id, "courier:C-3", "courier:C-3", clock())
    with pytest.raises(NotFound):
        offer(app, shipment_id, "site:HOSP-Z", "site:HOSP-Z", clock())
    assert_nothing_recorded(app, before)
    assert app.shipment(shipment_id, site_scope()).offered_to == ""


def test_an_offer_sent_again_is_applied_once(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    first = offer(app, shipment_id, C1, f"site:{DESTINATION}", clock(), key="o-1")
    again = offer(app, shipment_id, C1, f"site:{DESTINATION}", clock(), key="o-1")
    assert first == again and first.offered_to == f"site:{DESTINATION}"
    assert kinds(app).count("HandoffOffered") == 1


def test_the_origin_offers_the_shipment_to_the_courier_it_assigns_while_holding_it(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    assert app.shipment(shipment_id, site_scope()).offered_to == C1  # named at creation
    view = app.assign_courier(shipment_id, "C-2", site_user())
    assert view.offered_to == C2 and kinds(app)[-2:] == ["CourierAssigned", "HandoffOffered"]
    assert hand_to_courier(app, shipment_id, units, "C-2", FROM_SITE, clock()).custodian == C2


def test_a_courier_company_site_takes_the_shipment_of_its_courier(
    facts: InMemoryFacts, clock: Clock
) -> None:
    couriers = InMemoryCouriers()
    couriers.employ("C-1", "LOGI-1")
    company = build_app(facts, clock, couriers=couriers)
    try:
        units = [facts.package(din(1))]
        shipment_id = company.create_shipment(new_shipment(units), site_user()).shipment_id
        offer(company, shipment_id, FROM_SITE, "site:LOGI-1", clock())
        by = site_user("LOGI-1", "courier", "u-dispatch")
        company.scan(shipment_id, attempt("site:LOGI-1", "", clock(), units[0]), by)
        taken = company.hand_over(shipment_id, attempt("site:LOGI-1", "", clock()), by)
        assert taken.custodian == "site:LOGI-1"
        other = site_user("COURIER-2", "courier", "u-other")
        with pytest.raises(NotFound):
            company.scan(shipment_id, attempt("site:COURIER-2", "", clock(), units[0]), other)
    finally:
        company.close()
        company.unpublished.close()
