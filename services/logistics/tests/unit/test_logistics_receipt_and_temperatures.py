"""Delivery to the destination site, receipt inspection, exceptions, temperatures (I3, I5);
only the shipment's parties do any of it (issue 13): to another site it does not exist."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.values import ExceptionKind, Reading
from v2v_platform.attribution import SignatureManifestation, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.errors import Forbidden, InvalidInput, NotFound, Refused
from v2v_platform.protocol_rules import V1_TEMPERATURE_RANGES_C, ProtocolRules
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    OTHER_COI,
    Clock,
    InMemoryCouriers,
    InMemoryFacts,
    build_app,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
    offer,
    site_scope,
    site_user,
    stored_events,
)

C1 = "courier:C-1"
GMP = site_user(DESTINATION, "manufacturing", "u-gmp")
APPROVAL = SignatureManifestation("u-qp", "Dr. Q", "approval", datetime(2025, 6, 3, 13, tzinfo=UTC))


@pytest.fixture
def carried(app: LogisticsApplication, facts: InMemoryFacts, clock: Clock) -> tuple[str, list[str]]:
    units = [facts.package(din(1)), facts.package(din(2))]
    shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
    hand_to_courier(app, shipment_id, units, "C-1", f"site:{ORIGIN}", clock())
    offer(app, shipment_id, C1, f"site:{DESTINATION}", clock())
    return shipment_id, units


def refused_receipt(
    app: LogisticsApplication, shipment_id: str, labels: list[str], **kw: object
) -> ScanRefused:
    by = kw.get("by", GMP)
    with pytest.raises(ScanRefused) as refusal:
        app.receive_shipment(shipment_id, labels, str(kw.get("giver", C1)), None, by)  # type: ignore[arg-type]
    assert kinds(app)[-1] == "ScanMismatchRecorded"
    assert app.shipment(shipment_id, site_scope()).status == "picked-up"
    return refusal.value


def test_the_destination_receives_exactly_the_manifest(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    shipment_id, units = carried
    view = app.receive_shipment(shipment_id, list(reversed(units)), C1, None, GMP)
    assert (view.status, view.custodian) == ("delivered", f"site:{DESTINATION}")


@pytest.mark.parametrize(
    ("labels", "code"),
    [
        (lambda units, facts: units[:1], "missing-unit"),
        (lambda units, facts: [*units, facts.package(din(3))], "extra-unit"),
        (lambda units, facts: [*units, facts.package(din(4), coi=OTHER_COI)], "other-coi"),
        (lambda units, facts: [*units, din(99)], "unknown-unit"),
        (lambda units, facts: [units[0], units[0], units[1]], "duplicate-scan"),
        (lambda units, facts: ["garbage", *units], "malformed-label"),
    ],
    ids=["missing", "extra", "other-coi", "unknown", "duplicate", "malformed"],
)
def test_a_receipt_that_is_not_exactly_the_manifest_is_refused(
    app: LogisticsApplication,
    facts: InMemoryFacts,
    carried: tuple[str, list[str]],
    labels: object,
    code: str,
) -> None:
    shipment_id, units = carried
    scanned = labels(units, facts)  # type: ignore[operator]
    assert refused_receipt(app, shipment_id, scanned).reason_code == code


def test_a_receipt_from_a_party_that_does_not_hold_it_is_refused(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    refusal = refused_receipt(app, carried[0], carried[1], giver="courier:C-7")
    assert refusal.reason_code == "wrong-custodian"


def test_only_the_destination_site_receives(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    assert refused_receipt(app, *carried, by=site_user()).reason_code == "wrong-destination"


def test_a_site_that_is_no_party_finds_no_shipment_to_receive_and_leaves_no_record(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    """Issue 13: a stranger's refused receipt was recorded on the chain, naming it."""
    before = kinds(app)
    with pytest.raises(NotFound):
        app.receive_shipment(*carried, C1, None, site_user("HOSP-Z", "infusion"))
    assert kinds(app) == before


def test_no_delivery_before_the_courier_offers_it(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    units = [facts.package(din(1))]
    shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
    hand_to_courier(app, shipment_id, units, "C-1", f"site:{ORIGIN}", clock())
    refusal = refused_receipt(app, shipment_id, units)
    assert refusal.reason_code == "not-offered" and C1 in str(refusal)
    offer(app, shipment_id, C1, f"site:{DESTINATION}", clock())
    view = app.receive_shipment(shipment_id, units, "", None, GMP)  # no claim needed
    assert (view.status, view.custodian) == ("delivered", f"site:{DESTINATION}")
    assert stored_events(app)[-1].from_party == C1


def test_a_receipt_past_the_window_needs_a_signed_override(
    app: LogisticsApplication, carried: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = carried
    clock.advance(hours=50)
    with pytest.raises(ScanRefused) as refusal:
        app.receive_shipment(shipment_id, units, C1, None, GMP)
    assert refusal.value.reason_code == "window-breached"
    assert kinds(app)[-2:] == ["StabilityWindowBreached", "ScanMismatchRecorded"]
    override = WindowOverride("patient cannot wait; cells checked", APPROVAL)
    view = app.receive_shipment(shipment_id, units, C1, override, GMP)
    assert view.status == "delivered"
    delivered = stored_events(app)[-1]
    assert delivered.window_overridden and delivered.signature_meaning == "approval"
    assert delivered.reason == "patient cannot wait; cells checked"
    assert kinds(app).count("StabilityWindowBreached") == 1


def test_an_override_needs_a_reason_and_an_approval_signature() -> None:
    with pytest.raises(InvalidInput):
        WindowOverride(" ", APPROVAL)
    review = SignatureManifestation("u", "U", "review", datetime(2025, 6, 4, tzinfo=UTC))
    with pytest.raises(InvalidInput):
        WindowOverride("why", review)


def test_receipt_inspection_closes_the_shipment(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    shipment_id, units = carried
    with pytest.raises(Refused):
        app.inspect_receipt(shipment_id, True, True, "", GMP)  # not delivered yet
    app.receive_shipment(shipment_id, units, C1, None, GMP)
    with pytest.raises(Forbidden):
        app.inspect_receipt(shipment_id, True, True, "", site_user())
    with pytest.raises(InvalidInput):
        app.inspect_receipt(shipment_id, True, False, "", GMP)
    with pytest.raises(InvalidInput):
        app.inspect_receipt(shipment_id, False, True, "", GMP)
    assert app.inspect_receipt(shipment_id, True, True, "ok", GMP).status == "receipt-inspected"
    with pytest.raises(Refused):
        app.record_exception(shipment_id, ExceptionKind.DAMAGED, GMP.because("dropped"))


def test_an_exception_needs_a_reason_and_stops_the_shipment(
    app: LogisticsApplication, carried: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = carried
    with pytest.raises(InvalidInput):
        app.record_exception(shipment_id, ExceptionKind.LOST, site_user())
    with pytest.raises(NotFound):  # issue 13: not a party (was Forbidden)
        app.record_exception(shipment_id, ExceptionKind.LOST, site_user("HOSP-Z").because("?"))
    view = app.record_exception(shipment_id, ExceptionKind.LOST, site_user().because("no trace"))
    assert (view.status, view.exception_kind) == ("exception", "lost")
    with pytest.raises(ScanRefused) as refusal:
        app.receive_shipment(shipment_id, units, C1, None, GMP)
    assert refusal.value.reason_code == "wrong-state"


def test_a_site_that_is_no_party_finds_no_shipment_to_inspect_or_assign(
    app: LogisticsApplication, carried: tuple[str, list[str]]
) -> None:
    shipment_id, units = carried
    app.receive_shipment(shipment_id, units, C1, None, GMP)
    before = kinds(app)
    stranger = site_user("HOSP-Z", "infusion")
    with pytest.raises(NotFound):
        app.inspect_receipt(shipment_id, True, True, "", stranger)
    with pytest.raises(NotFound):
        app.assign_courier(shipment_id, "C-9", stranger)
    assert kinds(app) == before


def an_hour_ago(clock: Clock) -> datetime:
    """Readings are uploaded after they were taken (never ahead of the service's clock)."""
    return clock() - timedelta(hours=1)


def readings(start: datetime, *temperatures: float, device: str = "LOGGER-5") -> list[Reading]:
    return [
        Reading(start + timedelta(minutes=10 * n), t, device) for n, t in enumerate(temperatures)
    ]


def test_out_of_range_readings_form_excursions(
    app: LogisticsApplication, carried: tuple[str, list[str]], clock: Clock
) -> None:
    batch = readings(an_hour_ago(clock), 5.0, 9.5, 11.0, 8.4, 5.0, 1.0)
    result = app.upload_readings(carried[0], batch, site_user())
    assert result.recorded == 6
    first, second = result.excursions
    assert (first.min_c, first.max_c, first.duration_seconds) == (8.4, 11.0, 1200.0)
    assert first.started_at == batch[1].measured_at and first.ended_at == batch[3].measured_at
    assert (second.min_c, second.duration_seconds) == (1.0, 0.0)
    assert kinds(app)[-3:] == [
        "TemperatureReadingsRecorded",
        "TemperatureExcursionRecorded",
        "TemperatureExcursionRecorded",
    ]
    assert len(app.shipment(carried[0], site_scope()).excursions) == 2


def test_a_batch_uploaded_again_records_nothing_new(
    app: LogisticsApplication, carried: tuple[str, list[str]], clock: Clock
) -> None:
    batch = readings(an_hour_ago(clock), 5.0, 12.0)
    app.upload_readings(carried[0], batch, site_user())
    again = app.upload_readings(carried[0], batch, site_user())
    assert (again.recorded, again.excursions) == (0, [])
    assert kinds(app).count("TemperatureExcursionRecorded") == 1


def test_readings_of_another_device_are_refused(
    app: LogisticsApplication, carried: tuple[str, list[str]], clock: Clock
) -> None:
    before = kinds(app)
    with pytest.raises(Refused, match="LOGGER-5"):
        app.upload_readings(
            carried[0], readings(an_hour_ago(clock), 5.0, device="X-1"), site_user()
        )
    with pytest.raises(InvalidInput):
        app.upload_readings(carried[0], [], site_user())
    assert kinds(app) == before


def test_the_temperature_range_is_the_one_the_protocol_rules_give(
    facts: InMemoryFacts, clock: Clock
) -> None:
    wider = tuple(
        (condition, low, 12.0 if condition is Condition.FRESH_COLD else high)
        for condition, low, high in V1_TEMPERATURE_RANGES_C
    )
    app = build_app(facts, clock, rules=ProtocolRules(temperature_ranges_c=wider))
    units = [facts.package(din(1))]
    shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
    result = app.upload_readings(
        shipment_id, readings(an_hour_ago(clock), 5.0, 11.0, 12.5), site_user()
    )
    [excursion] = result.excursions
    assert (excursion.min_c, excursion.max_c) == (12.5, 12.5)
    app.close()
    app.unpublished.close()


def test_only_the_parties_upload_readings(facts: InMemoryFacts, clock: Clock) -> None:
    """Issue 13: anyone uploaded readings to any shipment (false excursions)."""
    couriers = InMemoryCouriers()
    couriers.employ("C-1", "LOGI-1")
    app = build_app(facts, clock, couriers=couriers)
    try:
        units = [facts.package(din(1))]
        shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
        batch = readings(an_hour_ago(clock), 5.0, 12.0)
        before = kinds(app)
        strangers = [
            site_user("HOSP-Z", "infusion"),
            site_user("COURIER-2", "courier"),  # a courier company, not C-1's
            site_user("LOGI-1", "collection"),  # C-1's company, not acting as a courier
        ]
        for stranger in strangers:
            with pytest.raises(NotFound):
                app.upload_readings(shipment_id, batch, stranger)
        assert kinds(app) == before
        company = site_user("LOGI-1", "courier", "u-dispatch")
        assert app.upload_readings(shipment_id, batch[:1], company).recorded == 1
        assert app.upload_readings(shipment_id, batch, GMP).recorded == 1
    finally:
        app.close()
        app.unpublished.close()
