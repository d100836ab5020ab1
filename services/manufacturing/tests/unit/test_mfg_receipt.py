"""Receiving units (I2): only a unit packaged for this site, for its COI, with a booked slot."""

from __future__ import annotations

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit
from v2v_manufacturing.domain.values import Condition
from v2v_manufacturing.testing import (
    COI,
    DAY,
    GMP,
    OTHER_COI,
    OTHER_GMP,
    InMemoryIntakeFacts,
    apheresis_din,
    book,
    operator,
    receive,
)
from v2v_platform.errors import Refused


def recorded_mismatches(app: ManufacturingApplication) -> list[ReceiptMismatch.Recorded]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, ReceiptMismatch.Recorded)]


def received_units(app: ManufacturingApplication) -> list[ReceivedUnit.Received]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, ReceivedUnit.Received)]


def test_expected_unit_is_received(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
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
    return mismatch


def test_unknown_unit_is_refused_and_recorded(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    book(app, facts)
    mismatch = refused_with(app, apheresis_din(9), COI, "unknown-unit")
    assert mismatch.coi == COI  # the scanned COI is well-formed: the chain at risk


def test_coi_label_of_another_patient_is_refused(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(2)
    facts.package(din, COI)
    book(app, facts)
    mismatch = refused_with(app, din, OTHER_COI, "coi-mismatch")
    assert mismatch.coi == COI and mismatch.scanned_coi == OTHER_COI


def test_unit_for_another_manufacturing_site_is_refused(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(3)
    facts.package(din, COI, site=OTHER_GMP)
    book(app, facts)
    refused_with(app, din, COI, "wrong-site")


def test_unit_of_a_coi_without_booked_slot_is_refused(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(4)
    facts.package(din, COI)
    refused_with(app, din, COI, "no-slot")


def test_released_slot_no_longer_counts(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(5)
    facts.package(din, COI)
    slot_id = book(app, facts)
    app.release_slot(slot_id, operator().because("device down"))
    refused_with(app, din, COI, "no-slot")


def test_slot_known_only_to_intake_does_not_count(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(6)
    facts.package(din, COI)
    facts.slot_booked(COI, GMP, f"{GMP}/{DAY}/77")
    refused_with(app, din, COI, "no-slot")


@pytest.mark.parametrize(
    ("din", "coi"),
    [("G1234986543210Z", COI), ("G12349865432100X", COI), (apheresis_din(1), "CH-not-a-coi")],
)
def test_malformed_label_is_refused_and_recorded(
    app: ManufacturingApplication, din: str, coi: str
) -> None:
    refused_with(app, din, coi, "malformed")


def test_unit_cannot_be_received_twice(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = receive(app, facts, 7)
    with pytest.raises(Refused, match="already received"):
        app.receive_unit(din, COI, operator())
    assert len(received_units(app)) == 1


def test_slot_id_not_issued_by_this_service_does_not_count(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts
) -> None:
    din = apheresis_din(8)
    facts.package(din, COI)
    facts.slot_booked(COI, GMP, "SLOT-GMP-B-20250320-1")
    refused_with(app, din, COI, "no-slot")
