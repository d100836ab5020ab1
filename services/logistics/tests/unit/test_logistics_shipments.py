"""Creating shipments: one COI, units related to the shipper and in its custody, one condition,
windows; a shipment is read by its parties and auditors only."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from v2v_logistics.application import LogisticsApplication, ScanRefusedAtCreation, UnitNotFound
from v2v_logistics.domain.values import UnitKind
from v2v_platform.auth import Role
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, NotFound, Refused
from v2v_platform.protocol_rules import ProtocolRules
from v2v_platform.scope import Scope
from v2v_testkit.logistics import (
    COI,
    COLLECTION_END,
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    SERVICE_SITE,
    Clock,
    InMemoryCouriers,
    InMemoryFacts,
    auditor_scope,
    build_app,
    din,
    hand_to_courier,
    new_shipment,
    offer,
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
    """Issue 13: as if absent (NotFound, was a custody refusal), with the same reason code."""
    with pytest.raises(UnitNotFound) as refused:
        app.create_shipment(new_shipment([din(9)]), site_user())
    assert refused.value.reason_code == "unknown-unit"
    assert str(refused.value).startswith("unknown-unit: no unit with DIN")


def test_units_of_two_cois_are_refused(app: LogisticsApplication, facts: InMemoryFacts) -> None:
    units = [facts.package(din(1)), facts.package(din(2), coi=OTHER_COI)]
    with pytest.raises(ScanRefusedAtCreation) as refused:
        app.create_shipment(new_shipment(units), site_user())
    assert refused.value.reason_code == "other-coi"


def test_units_of_another_site_are_refused_as_if_unknown(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    """Issue 13: the refusal named the other site's custody (and so the unit's existence);
    a unit verified facts do not relate to the shipper is now refused like an unknown one."""
    unit = facts.package(din(1), site="HOSP-Z")
    with pytest.raises(UnitNotFound) as refused:
        app.create_shipment(new_shipment([unit]), site_user())
    with pytest.raises(UnitNotFound) as unknown:
        app.create_shipment(new_shipment([din(2)]), site_user())
    assert refused.value.reason_code == unknown.value.reason_code == "unknown-unit"
    assert str(refused.value) == str(unknown.value).replace(din(2), unit)
    assert stored_events(app) == []


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
    offer(app, shipment, "courier:C-1", f"site:{DESTINATION}", clock())
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


def test_a_shipment_is_read_by_its_parties_and_auditors_only(
    facts: InMemoryFacts, clock: Clock
) -> None:
    """Issue 13: the logistics operator's site read every shipment; now a courier company
    reads the shipments of its couriers only (in its courier role)."""
    couriers = InMemoryCouriers()
    couriers.employ("C-1", SERVICE_SITE)
    app = build_app(facts, clock, couriers=couriers)
    ours = app.create_shipment(new_shipment([facts.package(din(7))]), site_user()).shipment_id
    theirs = new_shipment([facts.package(din(8))], courier_id="C-5")
    not_ours = app.create_shipment(theirs, site_user()).shipment_id
    company = Scope(SERVICE_SITE, frozenset({Role.COURIER}))
    assert app.shipment(ours, company).shipment_id == ours
    for hidden_from in (company, site_scope(SERVICE_SITE)):
        with pytest.raises(NotFound):
            app.shipment(not_ours, hidden_from)
    with pytest.raises(NotFound):
        app.shipment(ours, site_scope(SERVICE_SITE))  # not acting as a courier company
    app.close()
    app.unpublished.close()


def test_a_shipment_is_read_by_its_sites_and_auditors(
    app: LogisticsApplication, facts: InMemoryFacts
) -> None:
    shipment_id = app.create_shipment(
        new_shipment([facts.package(din(1))]), site_user()
    ).shipment_id
    for scope in (site_scope(ORIGIN), site_scope(DESTINATION)):
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
