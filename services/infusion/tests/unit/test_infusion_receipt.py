"""Receipt, storage and thaw at the treating site.

Only a product unit known from manufacturing's events is received (else the refused scan is
kept in the unpublished records: a receipt scan names no COI); a unit is received once; it is
stored after receipt; only cryo product thaws, and its post-thaw window runs from the thaw.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_infusion.application import InfusionApplication
from v2v_infusion.domain.mismatches import UnattributableScan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import ScanRefused
from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.protocol_rules import ProtocolRules
from v2v_testkit.infusion import (
    BATCH,
    COI,
    OTHER_SITE,
    SITE,
    Clock,
    InMemoryFacts,
    build_app,
    kinds,
    nurse,
    product_din,
    stored_events,
)


def unattributable(app: InfusionApplication) -> list[UnattributableScan.Recorded]:
    notifications = app.unpublished.recorder.select_notifications(1, 1000)
    events = [app.unpublished.mapper.to_domain_event(n) for n in notifications]
    return [e for e in events if isinstance(e, UnattributableScan.Recorded)]


def test_a_known_product_unit_is_received(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    view = app.receive_product(din, None, nurse())
    assert (view.din, view.coi, view.batch_id, view.status) == (din, COI, BATCH, "received")
    assert (view.condition, view.release_status) == ("cryo", "none")
    [event] = stored_events(app)
    assert isinstance(event, ProductAtSite.Received)
    assert (event.coi, event.din, event.treating_site_id, event.received_at) == (
        COI,
        din,
        SITE,
        clock.now,
    )
    assert event.actor["user_id"] == "u-nurse" and event.site_id == SITE


@pytest.mark.parametrize(
    ("label", "code"),
    [("W1234250000010", "malformed-label"), (product_din(9), "unknown-unit")],
)
def test_a_refused_receipt_is_recorded_in_the_unpublished_records_only(
    app: InfusionApplication, facts: InMemoryFacts, label: str, code: str
) -> None:
    facts.create_products([product_din(1)])
    with pytest.raises(ScanRefused, match=code) as refused:
        app.receive_product(label, None, nurse())
    assert refused.value.reason_code == code
    assert stored_events(app) == []  # nothing published, nothing else changed
    [scan] = unattributable(app)
    assert (scan.scan_kind, scan.scanned_din, scan.reason_code) == ("receipt", label, code)
    assert scan.site_id == SITE and scan.actor["user_id"] == "u-nurse"


def test_a_unit_is_received_once(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = product_din(1)
    facts.create_products([din])
    app.receive_product(din, None, nurse())
    with pytest.raises(Refused, match="already received"):
        app.receive_product(din, None, nurse("u-other"))
    assert kinds(app) == ["ProductAtSite.Received"]


def test_only_this_site_records_its_receipts(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    facts.create_products([product_din(1)])
    with pytest.raises(Forbidden):
        app.receive_product(product_din(1), None, nurse(site=OTHER_SITE))
    assert stored_events(app) == []


def test_a_receipt_time_in_the_future_is_invalid(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    facts.create_products([product_din(1)])
    with pytest.raises(InvalidInput, match="future"):
        app.receive_product(product_din(1), clock.now + timedelta(hours=1), nurse())


def test_storage_follows_receipt(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    with pytest.raises(NotFound, match="not been received"):
        app.store_product(din, "LN2-DEWAR-3", None, nurse())
    app.receive_product(din, None, nurse())
    with pytest.raises(InvalidInput, match="storage location"):
        app.store_product(din, "  ", None, nurse())
    view = app.store_product(din, "LN2-DEWAR-3", None, nurse())
    assert (view.status, view.storage_location) == ("stored", "LN2-DEWAR-3")
    event = stored_events(app)[-1]
    assert isinstance(event, ProductAtSite.Stored) and event.condition == "cryo"


def test_a_cryo_unit_thaws_once_and_its_window_runs_from_the_thaw(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    with pytest.raises(NotFound):
        app.start_thaw(din, None, nurse())
    app.receive_product(din, None, nurse())
    app.store_product(din, "LN2-DEWAR-3", None, nurse())
    with pytest.raises(InvalidInput, match="before the unit was received"):
        app.start_thaw(din, clock.now - timedelta(minutes=1), nurse())
    clock.advance(minutes=10)
    started = clock.now - timedelta(minutes=2)
    view = app.start_thaw(din, started, nurse())
    assert (view.status, view.infuse_by) == ("thawing", started + timedelta(minutes=30))
    event = stored_events(app)[-1]
    assert isinstance(event, ProductAtSite.ThawStarted)
    assert (event.thaw_started_at, event.window_minutes) == (started, 30)
    assert event.protocol_rules == "v1"  # the built-in rules, unchanged
    with pytest.raises(Refused, match="thawing"):
        app.start_thaw(din, None, nurse())
    with pytest.raises(Refused, match="no longer be stored"):
        app.store_product(din, "FRIDGE-2", None, nurse())
    assert kinds(app)[-1] == "ProductAtSite.ThawStarted"


def test_fresh_product_does_not_thaw(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = product_din(1)
    facts.create_products([din], condition=Condition.FRESH_COLD)
    app.receive_product(din, None, nurse())
    with pytest.raises(Refused, match="only cryo"):
        app.start_thaw(din, None, nurse())
    assert kinds(app) == ["ProductAtSite.Received"]


def test_the_post_thaw_window_is_configurable(facts: InMemoryFacts, clock: Clock) -> None:
    rules = ProtocolRules(post_thaw=timedelta(minutes=90))
    app = build_app(facts, clock, rules=rules)
    din = product_din(1)
    facts.create_products([din], condition=Condition.CRYO)
    app.receive_product(din, None, nurse())
    view = app.start_thaw(din, None, nurse())
    assert view.infuse_by == clock.now + timedelta(minutes=90)
    event = stored_events(app)[-1]
    assert event.window_minutes == 90
    assert event.protocol_rules == rules.tag and rules.tag.startswith("v1+")
