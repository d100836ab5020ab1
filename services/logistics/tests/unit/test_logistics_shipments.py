"""Creating shipments: one COI, known units in the shipper's custody, one condition, windows."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from v2v_logistics.application import LogisticsApplication, ScanRefusedAtCreation
from v2v_logistics.domain.values import UnitKind
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_platform.protocol_rules import ProtocolRules
from v2v_testkit.logistics import (
    COI,
    COLLECTION_END,
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    auditor_scope,
    build_app,
    din,
    hand_to_courier,
    new_shipment,
    site_scope,
    site_user,
    stored_events,
)


def test_a_shipment_of_known_units_of_one_coi_starts_with_the_shipper(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    units = [facts.package(din(1)), facts.package(din(2))]
    view = app.create_shipment(new_shipment(units), site_user())
    assert (view.coi, view.status, view.custodian) == (COI, "created", f"site:{ORIGIN}")
    assert view.manifest == units and view.destination_site_id == DESTINATION
    assert view.window_ends_at == COLLECTION_END + timedelta(hours=48)
    assert view.assigned_courier_id == "C-1"


def test_events_are_authored_by_the_service_site_with_the_acting_user(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    view = app.create_shipment(new_shipment([facts.package(din(1))]), site_user())
    [created] = stored_events(app)
    assert str(created.originator_id) == view.shipment_id
    assert created.site_id == SERVICE_SITE and created.actor["user_id"] == "u-nurse"
    assert created.origin_site_id == ORIGIN


def test_fresh_product_window_is_72_hours_and_cryo_has_none(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    product = facts.package(din(5), kind=UnitKind.PRODUCT)
    assert app.create_shipment(
        new_shipment([product]), site_user()
    ).window_ends_at == COLLECTION_END + timedelta(hours=72)
    cryo = facts.package(din(6), condition=Condition.CRYO)
    assert (
        app.create_shipment(new_shipment([cryo], Condition.CRYO), site_user()).window_ends_at
        is None
    )


def test_unknown_unit_is_refused(app: LogisticsApplication) -> None:
    with pytest.raises(ScanRefusedAtCreation) as refused:
        app.create_shipment(new_shipment([din(9)]), site_user())
    assert refused.value.reason_code == "unknown-unit"


def test_units_of_two_cois_are_refused(app: LogisticsApplication, facts: InMemoryFacts) -> None:
    units = [facts.package(din(1)), facts.package(din(2), coi=OTHER_COI)]
    with pytest.raises(ScanRefusedAtCreation) as refused:
        app.create_shipment(new_shipment(units), site_user())
    assert refused.value.reason_code == "other-coi"


def test_units_held_by_another_site_are_refused(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    unit = facts.package(din(1), site="HOSP-Z")
    with pytest.raises(ScanRefusedAtCreation) as refused:
        app.create_shipment(new_shipment([unit]), site_user())
    assert refused.value.reason_code == "wrong-custodian"


def test_a_unit_on_an_open_shipment_cannot_be_shipped_again(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    unit = facts.package(din(1))
    app.create_shipment(new_shipment([unit]), site_user())
    with pytest.raises(ScanRefusedAtCreation) as refused:
        app.create_shipment(new_shipment([unit]), site_user())
    assert refused.value.reason_code == "wrong-custodian"


def test_after_delivery_the_destination_ships_the_unit_on(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    unit = facts.package(din(1))
    shipment = app.create_shipment(new_shipment([unit]), site_user()).shipment_id
    hand_to_courier(app, shipment, [unit], "C-1", f"site:{ORIGIN}", clock())
    receiver = site_user(DESTINATION, "manufacturing", "u-gmp")
    app.receive_shipment(shipment, [unit], "courier:C-1", None, receiver)
    with pytest.raises(ScanRefusedAtCreation):
        app.create_shipment(new_shipment([unit]), site_user())
    back = new_shipment([unit])
    onward = app.create_shipment(
        type(back)(back.manifest, back.condition, ORIGIN, "DEWAR-2", "LOGGER-2"), receiver
    )
    assert onward.custodian == f"site:{DESTINATION}"


def test_condition_must_match_the_units(app: LogisticsApplication, facts: InMemoryFacts) -> None:
    unit = facts.package(din(1))
    with pytest.raises(Refused, match="not held fresh-ambient"):
        app.create_shipment(new_shipment([unit], Condition.FRESH_AMBIENT), site_user())


@pytest.mark.parametrize(
    "manifest",
    [[], ["not-a-din"], [din(1), din(1)]],
    ids=["empty", "malformed", "twice"],
)
def test_bad_manifests_are_invalid(
    app: LogisticsApplication, facts: InMemoryFacts, manifest: list[str]
) -> None:
    facts.package(din(1))
    with pytest.raises(InvalidInput):
        app.create_shipment(new_shipment(manifest), site_user())


def test_shipping_to_yourself_or_without_logger_is_invalid(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    unit = facts.package(din(1))
    plan = new_shipment([unit])
    with pytest.raises(InvalidInput):
        app.create_shipment(type(plan)([unit], plan.condition, ORIGIN, "D", "L"), site_user())
    with pytest.raises(InvalidInput):
        app.create_shipment(type(plan)([unit], plan.condition, DESTINATION, "D", " "), site_user())


def test_the_created_event_records_the_protocol_rules_that_set_the_window(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    app.create_shipment(new_shipment([facts.package(din(1))]), site_user())
    assert stored_events(app)[-1].protocol_rules == "v1"
    rules = ProtocolRules(fresh_apheresis=timedelta(hours=24))
    shorter = build_app(facts, clock, rules=rules)
    view = shorter.create_shipment(new_shipment([facts.package(din(2))]), site_user())
    assert view.window_ends_at == COLLECTION_END + timedelta(hours=24)
    [created] = stored_events(shorter)
    assert created.protocol_rules == rules.tag != "v1"
    assert created.window_rule == "fresh apheresis: collection end + 24 h"
    shorter.close()
    shorter.unpublished.close()


def test_a_shipment_is_read_by_its_sites_the_operator_and_auditors_only(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    shipment_id = app.create_shipment(
        new_shipment([facts.package(din(1))]), site_user()
    ).shipment_id
    for scope in (site_scope(ORIGIN), site_scope(DESTINATION), site_scope(SERVICE_SITE)):
        assert app.shipment(shipment_id, scope).shipment_id == shipment_id
    assert app.shipment(shipment_id, auditor_scope()).shipment_id == shipment_id
    with pytest.raises(NotFound) as hidden:
        app.shipment(shipment_id, site_scope("HOSP-Z"))
    unknown = str(uuid4())
    with pytest.raises(NotFound) as absent:
        app.shipment(unknown, site_scope("HOSP-Z"))
    assert str(hidden.value) == str(absent.value).replace(unknown, shipment_id)
    with pytest.raises(NotFound):
        app.shipment(unknown, auditor_scope())
