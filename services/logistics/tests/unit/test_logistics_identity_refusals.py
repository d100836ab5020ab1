"""One DIN, one patient (issue 14, I1): a unit whose DIN verified facts bind to two COIs is
never shipped (refused at creation, nothing recorded), and no scan, offer, handoff or receipt
of a shipment holding it goes on: each is recorded as a mismatch (`identity-conflict`) on the
shipment's chain, then refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2v_logistics.adapters.facts_projection import SqlLogisticsFacts
from v2v_logistics.application import LogisticsApplication, ScanRefusedAtCreation
from v2v_logistics.bootstrap import bootstrap
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.ids.bindings import IDENTITY_CONFLICT
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    attempt,
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

FROM_SITE, TO_SITE = f"site:{ORIGIN}", f"site:{DESTINATION}"
C1 = "courier:C-1"
GMP = site_user(DESTINATION, "manufacturing", "u-gmp")


@pytest.fixture
def shipped(app: LogisticsApplication, facts: InMemoryFacts) -> tuple[str, list[str]]:
    units = [facts.package(din(1)), facts.package(din(2))]
    return app.create_shipment(new_shipment(units), site_user()).shipment_id, units


def recorded_refusal(app: LogisticsApplication, key: str = "") -> None:
    """The last stored event records the refusal as an identity conflict."""
    last = stored_events(app)[-1]
    assert type(last).__name__ == "ScanMismatchRecorded"
    assert last.reason_code == IDENTITY_CONFLICT and OTHER_COI in last.explanation
    if key:
        assert last.idempotency_key == key


def test_a_shipment_of_a_conflicted_unit_is_refused_and_nothing_is_recorded(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    units = [facts.package(din(1)), facts.package(din(2))]
    facts.bind(units[1], OTHER_COI)

    with pytest.raises(ScanRefusedAtCreation) as refusal:
        app.create_shipment(new_shipment(units), site_user())

    assert refusal.value.reason_code == IDENTITY_CONFLICT
    assert units[1][:13] in str(refusal.value) and OTHER_COI in str(refusal.value)
    assert kinds(app) == []
    assert app.unpublished.shipments_of(units[1][:13]) == []


def test_a_scan_of_a_shipment_holding_a_conflicted_unit_is_recorded_then_refused(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    facts.bind(units[1], OTHER_COI)  # learned after the shipment was created
    scan = attempt(C1, FROM_SITE, clock(), units[0])

    with pytest.raises(ScanRefused) as refusal:
        app.scan(shipment_id, scan, courier())

    assert refusal.value.reason_code == IDENTITY_CONFLICT
    recorded_refusal(app, scan.idempotency_key)
    assert app.courier_shipment(shipment_id, "C-1").scanned == []
    count = len(kinds(app))
    with pytest.raises(ScanRefused) as again:  # the same key: the same outcome, once
        app.scan(shipment_id, scan, courier())
    assert again.value.reason_code == IDENTITY_CONFLICT and len(kinds(app)) == count


def test_a_handoff_of_a_shipment_holding_a_conflicted_unit_is_recorded_then_refused(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    for unit in units:
        app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), unit), courier())
    facts.bind(units[0], OTHER_COI)
    handoff = attempt(C1, FROM_SITE, clock())

    with pytest.raises(ScanRefused) as refusal:
        app.hand_over(shipment_id, handoff, courier())

    assert refusal.value.reason_code == IDENTITY_CONFLICT
    recorded_refusal(app, handoff.idempotency_key)
    assert app.shipment(shipment_id, site_scope()).custodian == FROM_SITE


def test_an_offer_of_a_shipment_holding_a_conflicted_unit_is_recorded_then_refused(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    facts.bind(units[0], OTHER_COI)

    with pytest.raises(ScanRefused) as refusal:
        offer(app, shipment_id, C1, TO_SITE, clock(), key="offer-1")

    assert refusal.value.reason_code == IDENTITY_CONFLICT
    recorded_refusal(app, "offer-1")
    view = app.shipment(shipment_id, site_scope())
    assert (view.custodian, view.status) == (C1, "picked-up")


def test_a_receipt_of_a_shipment_holding_a_conflicted_unit_is_recorded_then_refused(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    offer(app, shipment_id, C1, TO_SITE, clock())
    facts.bind(units[1], OTHER_COI)

    with pytest.raises(ScanRefused) as refusal:
        app.receive_shipment(shipment_id, units, C1, None, GMP, idempotency_key="receipt-1")

    assert refusal.value.reason_code == IDENTITY_CONFLICT
    recorded_refusal(app, "receipt-1")
    assert app.shipment(shipment_id, site_scope()).status == "picked-up"


def test_a_shipment_without_a_conflicted_unit_goes_on(
    app: LogisticsApplication, facts: InMemoryFacts, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    facts.bind(units[0], facts.units[units[0][:13]].coi)  # the same COI again: no conflict
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    offer(app, shipment_id, C1, TO_SITE, clock())
    view = app.receive_shipment(shipment_id, units, C1, None, GMP)
    assert view.status == "delivered"
    assert IDENTITY_CONFLICT not in [getattr(e, "reason_code", "") for e in stored_events(app)]


def test_the_service_reads_unit_identities_from_its_facts_projection(tmp_path: Path) -> None:
    init_pki(tmp_path / "pki", [parse_site_spec(f"{ORIGIN}:collection")])
    settings = LogisticsSettings(
        site_id=SERVICE_SITE, pki_dir=tmp_path / "pki", sqlite_path=tmp_path / "lg.sqlite"
    )
    service = bootstrap(settings, clock=Clock())
    try:
        assert isinstance(service.app.identities, SqlLogisticsFacts)
        assert service.app.identities is service.app.facts
    finally:
        service.stop()
