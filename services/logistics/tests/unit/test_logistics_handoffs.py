"""Courier scans and custody handoffs (I2, I3): every refusal is recorded, nothing else changes;
each idempotency key is applied once; late scans are flagged, not reordered."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.matching import ScanRefused
from v2v_testkit.logistics import (
    ORIGIN,
    OTHER_COI,
    Clock,
    InMemoryFacts,
    attempt,
    courier,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
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
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C2, FROM_SITE, clock()), courier("C-2"))
    assert refusal.value.reason_code == "wrong-custodian"
    assert app.shipment(shipment_id, site_scope()).custodian == C1


def test_no_scan_or_handoff_after_delivery(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    app.receive_shipment(shipment_id, units, C1, None, site_user("GMP-B", "manufacturing"))
    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, attempt(C2, "site:GMP-B", clock()), courier("C-2"))
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
    app.receive_shipment(
        shipment_id, units, "courier:C-2", None, site_user("GMP-B", "manufacturing")
    )
    assert app.courier_shipments("C-2") == []
