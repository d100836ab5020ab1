"""Clinical time at the treating site (issue 14): each step carries when it happened at the
ward, the chain stays causal (no receipt before the product's release or its delivery, no
storage before receipt, no thaw before receipt or storage, no bedside verification before
the thaw (cryo) or the receipt (fresh), no second scan before the first, no infusion before
verification; each refusal is INVALID_ARGUMENT naming the field and nothing is recorded), and
the windows are judged on these clinical times, so data entered after the fact is judged by
when things happened. Each event's envelope carries its clinical time as `occurred_at`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_infusion.adapters.payloads import TRANSLATOR
from v2v_infusion.application import AdverseEventReport, InfusionApplication
from v2v_infusion.domain.clinical_order import check_receipt
from v2v_infusion.domain.values import ScanRefused
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_testkit.infusion import (
    FIRST_NURSE,
    OTHER_COI,
    RELEASED_AT,
    SECOND_NURSE,
    Clock,
    InMemoryFacts,
    administration,
    kinds,
    nurse,
    product_din,
    scan,
    stored_events,
)


def released_unit(facts: InMemoryFacts, condition: Condition = Condition.FRESH_COLD) -> str:
    din = product_din(1)
    facts.create_products([din], condition=condition)
    facts.release()
    return din


def refused_without_record(app: InfusionApplication, match: str, step: object) -> None:
    before = kinds(app)
    with pytest.raises(InvalidInput, match=match):
        step()  # type: ignore[operator]
    assert kinds(app) == before


def test_a_ward_receipt_before_the_release_is_refused(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = released_unit(facts)
    early = RELEASED_AT - timedelta(minutes=50)
    refused_without_record(
        app,
        r"received_at .* is before the product's release at 2025-06-04T08:00:00\+00:00",
        lambda: app.receive_product(din, early, nurse()),
    )
    view = app.receive_product(din, RELEASED_AT + timedelta(minutes=50), nurse())
    assert view.status == "received"


def test_a_receipt_of_a_unit_whose_release_is_not_known_yet_is_not_judged(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    """Without a release decision known here the receipt stands (the bedside refuses the
    unreleased unit; the projection alerts on a receipt without a release)."""
    din = product_din(1)
    facts.create_products([din])
    assert app.receive_product(din, RELEASED_AT - timedelta(days=1), nurse()).status == ("received")


def test_no_receipt_before_the_delivery_to_this_site() -> None:
    delivered = RELEASED_AT + timedelta(hours=20)
    with pytest.raises(InvalidInput, match=r"received_at .* is before its delivery to this site"):
        check_receipt(delivered - timedelta(minutes=1), RELEASED_AT, delivered)
    check_receipt(delivered, RELEASED_AT, delivered)
    check_receipt(RELEASED_AT, RELEASED_AT, None)


def test_no_storage_before_receipt(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = released_unit(facts, Condition.CRYO)
    received = RELEASED_AT + timedelta(hours=1)
    app.receive_product(din, received, nurse())
    refused_without_record(
        app,
        r"stored_at .* is before the unit was received at",
        lambda: app.store_product(din, "LN2-3", received - timedelta(minutes=1), nurse()),
    )
    stored = received + timedelta(minutes=5)
    app.store_product(din, "LN2-3", stored, nurse())
    refused_without_record(
        app,
        r"stored_at .* is before its previous storage at",
        lambda: app.store_product(din, "LN2-4", stored - timedelta(minutes=1), nurse()),
    )


def test_no_thaw_before_storage(app: InfusionApplication, facts: InMemoryFacts) -> None:
    din = released_unit(facts, Condition.CRYO)
    received = RELEASED_AT + timedelta(hours=1)
    app.receive_product(din, received, nurse())
    stored = received + timedelta(minutes=30)
    app.store_product(din, "LN2-3", stored, nurse())
    refused_without_record(
        app,
        r"thaw_started_at .* is before the unit was stored at",
        lambda: app.start_thaw(din, stored - timedelta(minutes=10), nurse()),
    )
    assert app.start_thaw(din, stored + timedelta(minutes=1), nurse()).status == "thawing"


def test_no_bedside_verification_before_the_thaw(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts, Condition.CRYO)
    app.receive_product(din, None, nurse())
    thawed = clock.now
    app.start_thaw(din, thawed, nurse())
    clock.advance(minutes=5)
    refused_without_record(
        app,
        r"scanned_at .* is before its thaw started at",
        lambda: scan(app, din, FIRST_NURSE, scanned_at=thawed - timedelta(minutes=1)),
    )
    assert scan(app, din, FIRST_NURSE, scanned_at=thawed).outcome == "first-scan-recorded"


def test_no_bedside_verification_of_fresh_product_before_its_receipt(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts)
    received = clock.now - timedelta(minutes=30)
    app.receive_product(din, received, nurse())
    refused_without_record(
        app,
        r"scanned_at .* is before the unit was received at",
        lambda: scan(app, din, FIRST_NURSE, scanned_at=received - timedelta(minutes=1)),
    )


def test_no_second_scan_before_the_first(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts)
    app.receive_product(din, clock.now - timedelta(hours=1), nurse())
    first = clock.now - timedelta(minutes=10)
    scan(app, din, FIRST_NURSE, scanned_at=first)
    refused_without_record(
        app,
        r"scanned_at .* is before the first bedside scan at",
        lambda: scan(app, din, SECOND_NURSE, scanned_at=first - timedelta(minutes=1)),
    )
    assert scan(app, din, SECOND_NURSE, scanned_at=first).outcome == "verified"


def test_no_infusion_before_verification(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts)
    app.receive_product(din, clock.now - timedelta(hours=1), nurse())
    verified = clock.now - timedelta(minutes=20)
    scan(app, din, FIRST_NURSE, scanned_at=verified - timedelta(minutes=1))
    scan(app, din, SECOND_NURSE, scanned_at=verified)
    refused_without_record(
        app,
        r"administered_at .* is before its bedside verification at",
        lambda: app.administer_infusion(
            administration(din, administered_at=verified - timedelta(seconds=1)),
            nurse(FIRST_NURSE),
        ),
    )
    infused = app.administer_infusion(administration(din, administered_at=verified), nurse())
    assert infused.administered_at == verified


def test_a_fresh_infusion_entered_after_the_fact_is_judged_by_when_it_happened(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """Released 71 h before the infusion, entered 10 h later (81 h after the release): within
    the 72 h fresh window when it happened, so verified and infused."""
    din = released_unit(facts)
    clock.now = RELEASED_AT + timedelta(hours=81)
    app.receive_product(din, RELEASED_AT + timedelta(hours=2), nurse())
    scanned = RELEASED_AT + timedelta(hours=70, minutes=50)
    scan(app, din, FIRST_NURSE, scanned_at=scanned)
    assert scan(app, din, SECOND_NURSE, scanned_at=scanned).outcome == "verified"
    infused_at = RELEASED_AT + timedelta(hours=71)
    given = administration(din, administered_at=infused_at)
    assert app.administer_infusion(given, nurse(FIRST_NURSE)).status == "infused"
    event = stored_events(app)[-1]
    assert event.administered_at == infused_at
    outbound = TRANSLATOR.translate(event)
    assert outbound is not None
    assert outbound.content.occurred_at == infused_at
    assert outbound.content.recorded_at == event.timestamp != infused_at


def test_a_scan_past_the_window_when_it_happened_is_refused(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts)
    app.receive_product(din, RELEASED_AT + timedelta(hours=2), nurse())
    clock.now = RELEASED_AT + timedelta(hours=90)
    with pytest.raises(ScanRefused, match="window-expired"):
        scan(app, din, FIRST_NURSE, scanned_at=RELEASED_AT + timedelta(hours=73))


def test_a_cryo_infusion_entered_after_the_fact_is_judged_on_its_thaw(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts, Condition.CRYO)
    thawed = RELEASED_AT + timedelta(hours=1)
    app.receive_product(din, thawed - timedelta(minutes=30), nurse())
    app.start_thaw(din, thawed, nurse())
    clock.now = thawed + timedelta(hours=4)  # the ward enters the bedside steps later
    scan(app, din, FIRST_NURSE, scanned_at=thawed + timedelta(minutes=10))
    scan(app, din, SECOND_NURSE, scanned_at=thawed + timedelta(minutes=12))
    given = administration(din, administered_at=thawed + timedelta(minutes=20))
    assert app.administer_infusion(given, nurse(FIRST_NURSE)).status == "infused"


def test_every_step_carries_its_clinical_time_to_the_envelope(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts, Condition.CRYO)
    base = RELEASED_AT + timedelta(minutes=30)
    clock.now = base + timedelta(hours=2)
    app.receive_product(din, base, nurse())
    app.store_product(din, "LN2-3", base + timedelta(minutes=1), nurse())
    app.start_thaw(din, base + timedelta(minutes=2), nurse())
    scan(app, din, FIRST_NURSE, scanned_at=base + timedelta(minutes=3))
    scan(app, din, SECOND_NURSE, scanned_at=base + timedelta(minutes=4))
    given = administration(din, administered_at=base + timedelta(minutes=5))
    app.administer_infusion(given, nurse(FIRST_NURSE))
    onset = base + timedelta(minutes=6)
    app.record_adverse_event(AdverseEventReport(din, "crs", 1, onset), nurse())
    occurred = []
    for event in stored_events(app):
        outbound = TRANSLATOR.translate(event)
        assert outbound is not None
        occurred.append(outbound.content.occurred_at)
    assert occurred == [base + timedelta(minutes=m) for m in range(7)]


def test_a_refused_scan_is_recorded_at_when_it_happened(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    din = released_unit(facts)
    app.receive_product(din, clock.now - timedelta(hours=1), nurse())
    scanned = clock.now - timedelta(minutes=5)
    with pytest.raises(ScanRefused, match="coi-mismatch"):
        scan(app, din, FIRST_NURSE, wristband_coi=OTHER_COI, scanned_at=scanned)
    outbound = TRANSLATOR.translate(stored_events(app)[-1])
    assert outbound is not None and outbound.content.occurred_at == scanned
