"""Receiving units (I2): only a unit packaged for this site, for its COI, with a booked slot.

A refused scan is recorded on the chain at risk (the known unit's COI, else the scanned COI);
one that names neither is kept in the unpublished records only, refused and logged.
"""

from __future__ import annotations

import logging

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit, UnattributableScan
from v2v_platform.conditions import Condition
from v2v_platform.errors import Refused
from v2v_platform.ids import Coi
from v2v_testkit.manufacturing import (
    AT_GMP,
    COI,
    DAY,
    GMP,
    OTHER_COI,
    OTHER_GMP,
    InMemoryManufacturingFacts,
    apheresis_din,
    book,
    operator,
    receive,
)


def recorded_mismatches(app: ManufacturingApplication) -> list[ReceiptMismatch.Recorded]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, ReceiptMismatch.Recorded)]


def unattributable_scans(app: ManufacturingApplication) -> list[UnattributableScan.Recorded]:
    notifications = app.unpublished.recorder.select_notifications(1, 1000)
    events = [app.unpublished.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, UnattributableScan.Recorded)]


def received_units(app: ManufacturingApplication) -> list[ReceivedUnit.Received]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, ReceivedUnit.Received)]


def test_expected_unit_is_received(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(1)
    facts.package(din, COI, Condition.CRYO)
    slot_id = book(app, facts)
    receipt = app.receive_unit(din, COI, operator())
    assert (receipt.coi, receipt.din, receipt.slot_id) == (COI, din, slot_id)
    assert receipt.condition is Condition.CRYO
    [event] = received_units(app)
    assert (event.coi, event.din, event.site_id, event.actor["user_id"]) == (
        COI,
        din,
        GMP,
        "u-op",
    )
    assert not recorded_mismatches(app)


def refused_with(
    app: ManufacturingApplication, din: str, coi: str, code: str
) -> ReceiptMismatch.Recorded:
    before = len(received_units(app))
    with pytest.raises(Refused, match=code):
        app.receive_unit(din, coi, operator())
    assert len(received_units(app)) == before  # nothing else changed
    mismatch = recorded_mismatches(app)[-1]
    assert mismatch.reason_code == code and mismatch.scanned_din == din
    assert mismatch.site_id == GMP and mismatch.actor["user_id"] == "u-op"
    assert Coi.parse(mismatch.coi).value == mismatch.coi  # published on a chain: a valid COI
    assert not unattributable_scans(app)
    return mismatch


def test_unknown_unit_is_refused_and_recorded(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    book(app, facts)
    mismatch = refused_with(app, apheresis_din(9), OTHER_COI, "unknown-unit")
    assert mismatch.coi == OTHER_COI  # the scanned COI is valid: the chain at risk


def test_coi_label_of_another_patient_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(2)
    facts.package(din, COI)
    book(app, facts)
    mismatch = refused_with(app, din, OTHER_COI, "coi-mismatch")
    assert mismatch.coi == COI and mismatch.scanned_coi == OTHER_COI


def test_unit_for_another_manufacturing_site_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(3)
    facts.package(din, COI, site=OTHER_GMP)
    book(app, facts)
    refused_with(app, din, COI, "wrong-site")


def test_unit_of_a_coi_without_booked_slot_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(4)
    facts.package(din, COI)
    refused_with(app, din, COI, "no-slot")


def test_released_slot_no_longer_counts(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(5)
    facts.package(din, COI)
    slot_id = book(app, facts)
    app.release_slot(slot_id, operator().because("device down"))
    refused_with(app, din, COI, "no-slot")


def test_slot_known_only_to_intake_does_not_count(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(6)
    facts.package(din, COI)
    facts.slot_booked(COI, GMP, f"{GMP}/{DAY}/77")
    refused_with(app, din, COI, "no-slot")


@pytest.mark.parametrize("din", ["G1234986543210Z", "G12349865432100X", "", "A1234"])
def test_malformed_din_is_recorded_on_the_scanned_coi(
    app: ManufacturingApplication, din: str
) -> None:
    mismatch = refused_with(app, din, COI, "malformed")
    assert mismatch.coi == COI and "DIN" in mismatch.explanation


@pytest.mark.parametrize("coi", ["CH-not-a-coi", "", OTHER_COI[:-1]])
def test_malformed_coi_of_a_known_unit_is_recorded_on_the_unit_coi(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, coi: str
) -> None:
    din = apheresis_din(1)
    facts.package(din, OTHER_COI)
    mismatch = refused_with(app, din, coi, "malformed")
    assert mismatch.coi == OTHER_COI and mismatch.scanned_coi == coi
    assert "COI" in mismatch.explanation


def refused_unattributable(
    app: ManufacturingApplication, din: str, coi: str, caplog: pytest.LogCaptureFixture
) -> UnattributableScan.Recorded:
    before = len(app.recorder.select_notifications(1, 1000))
    with (
        caplog.at_level(logging.WARNING, logger="v2v.manufacturing"),
        pytest.raises(Refused, match="malformed") as refused,
    ):
        app.receive_unit(din, coi, operator())
    assert "neither a known unit nor a valid COI" in str(refused.value)
    assert len(app.recorder.select_notifications(1, 1000)) == before  # nothing published
    scan = unattributable_scans(app)[-1]
    assert (scan.scanned_din, scan.scanned_coi) == (din, coi)
    assert scan.reason_code == "malformed" and scan.explanation in str(refused.value)
    assert scan.site_id == GMP and scan.actor["user_id"] == "u-op"
    assert str(scan.originator_id) in str(refused.value)
    [logged] = [r for r in caplog.records if "unattributable receipt scan" in r.getMessage()]
    assert str(scan.originator_id) in logged.getMessage() and repr(din) in logged.getMessage()
    return scan


def test_unknown_din_with_malformed_coi_is_unattributable(
    app: ManufacturingApplication, caplog: pytest.LogCaptureFixture
) -> None:
    scan = refused_unattributable(app, apheresis_din(1), "CH-not-a-coi", caplog)
    assert "COI" in scan.explanation


def test_malformed_din_and_coi_are_unattributable(
    app: ManufacturingApplication, caplog: pytest.LogCaptureFixture
) -> None:
    scan = refused_unattributable(app, "G1234986543210Z", "", caplog)
    assert "DIN" in scan.explanation and "COI" in scan.explanation


def test_unattributable_scans_are_kept_one_by_one(
    app: ManufacturingApplication, caplog: pytest.LogCaptureFixture
) -> None:
    first = refused_unattributable(app, "x", "y", caplog)
    caplog.clear()
    second = refused_unattributable(app, "x", "y", caplog)
    assert first.originator_id != second.originator_id
    assert len(unattributable_scans(app)) == 2


def test_unit_cannot_be_received_twice(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = receive(app, facts, 7)
    with pytest.raises(Refused, match="already received"):
        app.receive_unit(din, COI, operator())
    assert len(received_units(app)) == 1


def test_slot_id_not_issued_by_this_service_does_not_count(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = apheresis_din(8)
    facts.package(din, COI)
    facts.slot_booked(COI, GMP, "SLOT-GMP-B-20250320-1")
    refused_with(app, din, COI, "no-slot")


def test_expected_units_show_what_intake_packaged_here_and_the_slot(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    here, elsewhere = apheresis_din(11), apheresis_din(12)
    facts.package(here, COI)
    facts.package(elsewhere, COI, site=OTHER_GMP)
    assert [(u.din, u.slot_id) for u in app.expected_units(COI, AT_GMP)] == [(here, "")]
    slot_id = book(app, facts)
    assert [(u.din, u.slot_id) for u in app.expected_units(COI, AT_GMP)] == [(here, slot_id)]
    assert app.expected_units(OTHER_COI, AT_GMP) == []
