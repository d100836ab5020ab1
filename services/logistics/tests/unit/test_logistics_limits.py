"""Bounded input at logistics (issue 12): readings per upload, finite temperatures, no future
scan or reading times, refused scans echoed bounded, no accepted command near the record
limit. Nothing refused for its input is recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from v2v_logistics.adapters.payloads import TRANSLATOR
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.values import ExceptionKind, Reading
from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.errors import InvalidInput
from v2v_platform.limits import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_READINGS,
    MAX_TEXT_CHARS,
    sealed_sizes,
)
from v2v_testkit.logistics import (
    DESTINATION,
    ORIGIN,
    Clock,
    InMemoryFacts,
    attempt,
    courier,
    din,
    hand_to_courier,
    kinds,
    new_shipment,
    site_user,
    stored_events,
)

MB = 1024 * 1024
C1 = "courier:C-1"
FROM_SITE = f"site:{ORIGIN}"
YEAR_2999 = datetime(2999, 1, 1, tzinfo=UTC)


@pytest.fixture
def shipped(app: LogisticsApplication, facts: InMemoryFacts) -> tuple[str, list[str]]:
    units = [facts.package(din(1)), facts.package(din(2))]
    return app.create_shipment(new_shipment(units), site_user()).shipment_id, units


def readings(clock: Clock, *temperatures: float, count: int = 0) -> list[Reading]:
    values = temperatures or (5.0,) * count
    start = clock() - timedelta(hours=1)
    return [Reading(start + timedelta(seconds=n), t, "LOGGER-5") for n, t in enumerate(values)]


def test_an_upload_of_sixty_thousand_readings_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    before = kinds(app)
    with pytest.raises(InvalidInput, match="readings has 60000 items; the limit is 1000"):
        app.upload_readings(shipped[0], readings(clock, count=60_000), site_user())
    assert kinds(app) == before
    assert app.upload_readings(shipped[0], readings(clock, count=1000), site_user()).recorded == (
        MAX_READINGS
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_temperature_that_is_not_a_finite_number_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock, value: float
) -> None:
    before = kinds(app)
    with pytest.raises(InvalidInput, match=r"readings\[1\].temperature_c must be a finite"):
        app.upload_readings(shipped[0], readings(clock, 5.0, value), site_user())
    assert kinds(app) == before


def test_a_reading_taken_in_2999_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    future = [Reading(YEAR_2999, 5.0, "LOGGER-5")]
    with pytest.raises(InvalidInput, match=r"readings\[0\].measured_at 2999-01-01T00:00:00"):
        app.upload_readings(shipped[0], future, site_user())


def test_a_courier_scan_in_2999_is_refused_and_nothing_recorded(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    shipment_id, units = shipped
    before = kinds(app)
    with pytest.raises(InvalidInput, match="scanned_at 2999-01-01T00:00:00"):
        app.scan(shipment_id, attempt(C1, FROM_SITE, YEAR_2999, units[0]), courier())
    with pytest.raises(InvalidInput, match="scanned_at 2999-01-01T00:00:00"):
        app.hand_over(shipment_id, attempt(C1, FROM_SITE, YEAR_2999), courier())
    assert kinds(app) == before


def test_a_refused_scan_of_a_ten_megabyte_label_is_recorded_and_answered_cut(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    with pytest.raises(ScanRefused) as refused:
        app.scan(shipped[0], attempt(C1, FROM_SITE, clock(), "L" * (10 * MB)), courier())
    assert refused.value.reason_code == "malformed-label"
    assert len(str(refused.value)) < 1000
    mismatch = stored_events(app)[-1]
    assert mismatch.scanned_label == "L" * 256 + "…[cut: 10485760 characters in all]"
    assert len(mismatch.explanation) < 1000


def test_a_receipt_of_more_labels_than_a_manifest_holds_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    receiver = site_user(DESTINATION, "manufacturing")
    with pytest.raises(InvalidInput, match="scanned_labels has 21 items; the limit is 20"):
        app.receive_shipment(shipment_id, [units[0]] * 21, C1, None, receiver)


def test_a_window_override_signed_in_2999_is_refused(
    app: LogisticsApplication, shipped: tuple[str, list[str]], clock: Clock
) -> None:
    shipment_id, units = shipped
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    signed = SignatureManifestation("u-qp", "Dr. Q", "approval", YEAR_2999)
    receiver = site_user(DESTINATION, "manufacturing")
    with pytest.raises(InvalidInput, match=r"window_override\.signature\.signed_at 2999"):
        app.receive_shipment(shipment_id, units, C1, WindowOverride("urgent", signed), receiver)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"shipper_id": "D" * 65}, "shipper_id has 65 characters; the limit is 64"),
        ({"data_logger_id": "L" * MB}, "data_logger_id has 1048576 characters"),
        ({"manifest": [din(n) for n in range(1, 22)]}, "manifest has 21 items; the limit is 20"),
    ],
)
def test_a_shipment_field_over_its_limit_is_refused(
    app: LogisticsApplication, facts: InMemoryFacts, change: dict[str, object], named: str
) -> None:
    plan = new_shipment([facts.package(din(1))])
    with pytest.raises(InvalidInput, match=named):
        app.create_shipment(plan.__class__(**{**plan.__dict__, **change}), site_user())


def test_notes_and_reasons_are_bounded(
    app: LogisticsApplication, shipped: tuple[str, list[str]]
) -> None:
    with pytest.raises(InvalidInput, match="notes has 2001 characters; the limit is 2000"):
        app.inspect_receipt(shipped[0], True, True, "n" * 2001, site_user(DESTINATION))
    with pytest.raises(InvalidInput, match="reason has 1048576 characters; the limit is 2000"):
        app.record_exception(shipped[0], ExceptionKind.LOST, site_user().because("r" * MB))


def test_no_accepted_command_comes_near_the_record_limit(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    """The largest accepted value of every field, each command once: every envelope stays
    far below MAX_EVENT_BYTES (and the broker's 1 MiB)."""
    reason = "r" * MAX_TEXT_CHARS

    def person(site: str, role: str) -> Attribution:
        return Attribution("u" * MAX_ID_CHARS, "N" * MAX_NAME_CHARS, role, site, reason)

    shipper, receiver = person(ORIGIN, "collection"), person(DESTINATION, "manufacturing")
    carrier = Attribution("C-1", "N" * MAX_NAME_CHARS, "courier", ORIGIN, reason)
    units = [facts.package(din(n)) for n in range(1, 21)]
    plan = new_shipment(units)
    plan = plan.__class__(**{**plan.__dict__, "shipper_id": "D" * 64, "data_logger_id": "L" * 64})
    shipment_id = app.create_shipment(plan, shipper).shipment_id
    app.assign_courier(shipment_id, "C" * 64, shipper)  # and offered to that courier
    app.assign_courier(shipment_id, "C-1", shipper)
    key = "k" * MAX_ID_CHARS
    with pytest.raises(ScanRefused):
        app.scan(shipment_id, attempt(C1, FROM_SITE, clock(), "L" * MB, key), carrier)
    with pytest.raises(ScanRefused):  # missing units: 19 of them named
        app.hand_over(shipment_id, attempt(C1, FROM_SITE, clock()), carrier)
    hand_to_courier(app, shipment_id, units, "C-1", FROM_SITE, clock())
    to_receiver = attempt(f"site:{DESTINATION}", C1, clock(), key="o" * MAX_ID_CHARS)
    app.offer_handoff(shipment_id, to_receiver, carrier)
    logged = [
        Reading(clock() - timedelta(seconds=n), 5.0 if n % 2 else 30.0, "L" * 64)
        for n in range(MAX_READINGS)
    ]
    app.upload_readings(shipment_id, logged, shipper)
    clock.advance(hours=50)
    with pytest.raises(ScanRefused):
        app.receive_shipment(shipment_id, ["X" * MB] * 20, C1, None, receiver)
    signed = SignatureManifestation("u" * 64, "N" * 200, "approval", clock(), "h" * 64)
    app.receive_shipment(shipment_id, units, C1, WindowOverride(reason, signed), receiver)
    app.inspect_receipt(shipment_id, True, True, "n" * MAX_TEXT_CHARS, receiver)
    sizes = sealed_sizes(TRANSLATOR.translate, stored_events(app))
    assert len(sizes) >= 10
    assert max(sizes.values()) < MAX_EVENT_BYTES, sizes
