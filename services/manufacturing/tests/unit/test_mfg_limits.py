"""Bounded input at manufacturing (issue 12): lists and texts within their limits, finite QC
values, overrides not signed in the future, refused receipt scans echoed bounded, and no
accepted command near the broker's record limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from v2v_manufacturing.adapters.payloads import TRANSLATOR
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.receipt import ReceiptMismatch, UnattributableScan
from v2v_manufacturing.domain.values import ProcessStep, QcResult, StepKind
from v2v_platform.attribution import Attribution, SignatureManifestation, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.limits import (
    MAX_EVENT_BYTES,
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    MAX_PARAMETERS,
    MAX_TEXT_CHARS,
    sealed_sizes,
)
from v2v_testkit.manufacturing import (
    AT_GMP,
    COI,
    DAY,
    GMP,
    HOSPITAL,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    operator,
    receive,
)

MB = 1024 * 1024
CUT = "…[cut: 10485760 characters in all]"


def published(app: ManufacturingApplication) -> list[Any]:
    return [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 10_000)]


def step(**fields: Any) -> ProcessStep:
    given: dict[str, Any] = {
        "kind": StepKind.SELECTION,
        "device_type": "CliniMACS Prodigy",
        "device_serial": "PRD-0042",
    }
    return ProcessStep(**{**given, **fields})


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"reagent_lots": tuple(f"L{n}" for n in range(21))}, "reagent_lots has 21 items"),
        ({"reagent_lots": ("L" * 65,)}, r"reagent_lots\[0\] has 65 characters; the limit is 64"),
        ({"parameters": {f"p{n}": "1" for n in range(51)}}, "parameters has 51 items; the li"),
        ({"parameters": {"rpm": "9" * 201}}, r"parameters\[rpm\] has 201 characters; the limit"),
        ({"device_type": "D" * MB}, "device_type has 1048576 characters; the limit is 200"),
    ],
)
def test_a_process_step_over_its_limits_is_refused(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        step(**fields)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_an_in_process_qc_value_must_be_finite(value: float) -> None:
    with pytest.raises(InvalidInput, match="value must be a finite number"):
        QcResult("viability", value, "%", True)


def test_a_refused_receipt_scan_of_a_long_label_is_recorded_and_answered_cut(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    receive(app, facts, 1)
    with pytest.raises(Refused) as on_chain:
        app.receive_unit("D" * (10 * MB), COI, operator())
    [mismatch] = [e for e in published(app) if isinstance(e, ReceiptMismatch.Recorded)]
    assert mismatch.scanned_din == "D" * 256 + CUT and len(mismatch.explanation) < 1000
    assert len(str(on_chain.value)) < 1000
    with pytest.raises(Refused) as nowhere:
        app.receive_unit("D" * (10 * MB), "C" * (10 * MB), operator())
    notifications = app.unpublished.recorder.select_notifications(1, 1000)
    local = [app.unpublished.mapper.to_domain_event(n) for n in notifications]
    [scan] = [e for e in local if isinstance(e, UnattributableScan.Recorded)]
    assert scan.scanned_din.endswith(CUT) and scan.scanned_coi.endswith(CUT)
    assert len(str(nowhere.value)) < 1500


def test_a_batch_of_more_input_units_than_allowed_is_refused(
    app: ManufacturingApplication,
) -> None:
    with pytest.raises(InvalidInput, match="input_dins has 21 items; the limit is 20"):
        app.start_batch([apheresis_din(n) for n in range(1, 22)], None, operator())


def test_an_override_signed_in_2999_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = receive(app, facts, 1)
    signed = SignatureManifestation("u-qp", "Dr. Q", "approval", datetime(2999, 1, 1, tzinfo=UTC))
    with pytest.raises(InvalidInput, match=r"window_override\.signature\.signed_at 2999-01-01"):
        app.start_batch([din], WindowOverride("urgent", signed), operator())


def test_a_booking_by_a_megabyte_printed_name_is_refused_before_any_capacity_is_held(
    app: ManufacturingApplication,
) -> None:
    app.set_slot_capacity(GMP, DAY, 1, operator())
    nurse = Attribution("u-nurse", "N" * MB, "collection", HOSPITAL)
    with pytest.raises(InvalidInput, match=r"operator\.printed_name has 1048576 characters"):
        app.book_slot(COI, GMP, DAY, nurse)
    assert app.slot_calendar(GMP, DAY, AT_GMP).bookings == []


def test_a_failure_reason_is_bounded(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch = app.start_batch([receive(app, facts, 1)], None, operator())
    with pytest.raises(InvalidInput, match="reason has 2001 characters; the limit is 2000"):
        app.fail_batch(batch.batch_id, operator().because("r" * 2001))


def test_no_accepted_command_comes_near_the_record_limit(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    """The largest accepted value of every field, each command once: every envelope stays
    far below MAX_EVENT_BYTES (and the broker's 1 MiB)."""
    reason = "r" * MAX_TEXT_CHARS
    gmp = Attribution("u" * MAX_ID_CHARS, "N" * MAX_NAME_CHARS, "manufacturing", GMP, reason)
    dins = [receive(app, facts, n) for n in range(1, 21)]
    with pytest.raises(Refused):
        app.receive_unit("D" * MB, COI, gmp)
    clock.advance(hours=40)
    signed = SignatureManifestation("q" * 64, "Q" * 200, "approval", clock(), "h" * 64)
    batch = app.start_batch(dins, WindowOverride(reason, signed), gmp).batch_id
    biggest = step(
        kind=StepKind.TRANSDUCTION,
        device_type="D" * MAX_NAME_CHARS,
        device_serial="S" * MAX_ID_CHARS,
        reagent_lots=tuple(f"{n:02d}" + "L" * 62 for n in range(20)),
        vector_lot="V" * MAX_ID_CHARS,
        parameters={f"{n:02d}" + "p" * 62: "v" * MAX_NAME_CHARS for n in range(MAX_PARAMETERS)},
    )
    app.record_process_step(batch, biggest, gmp)
    app.record_in_process_qc(batch, QcResult("t" * 64, 1e308, "u" * 64, False), gmp)
    app.harvest(batch, 20, Condition.CRYO, gmp)
    other = app.start_batch([receive(app, facts, 30, condition=Condition.CRYO)], None, gmp)
    app.fail_batch(other.batch_id, gmp)
    sizes = sealed_sizes(TRANSLATOR.translate, published(app))
    assert len(sizes) >= 8
    assert max(sizes.values()) < MAX_EVENT_BYTES, sizes
