"""Clinical time (issue 14): receipt, start, harvest and failure carry when they happened
(default now), kept apart from when they were recorded, and causality within the batch is
refused naming the field: no start before the receipt of its inputs, no step, QC, harvest or
failure before the start, no harvest before the last process step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch, BatchInput
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_manufacturing.domain.values import ProcessStep, QcResult, StepKind
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.protocol_rules import DEFAULT_RULES
from v2v_testkit.manufacturing import (
    COI,
    COLLECTION_END,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    book,
    operator,
    reader,
    receive,
)

PRODIGY = ProcessStep(StepKind.SELECTION, "CliniMACS Prodigy", "PRD-0042", ("CD4/CD8-L1",))
RECEIVED = COLLECTION_END + timedelta(hours=4)
STARTED = COLLECTION_END + timedelta(hours=6)


def events_of(app: ManufacturingApplication, kind: type) -> list:  # type: ignore[type-arg]
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, kind)]


def received_at(app: ManufacturingApplication, facts: InMemoryManufacturingFacts) -> str:
    din = apheresis_din(1)
    facts.package(din, COI, Condition.FRESH_COLD)
    book(app, facts)
    app.receive_unit(din, COI, operator(), RECEIVED)
    return din


def started(app: ManufacturingApplication, facts: InMemoryManufacturingFacts) -> str:
    din = received_at(app, facts)
    return app.start_batch([din], None, operator(), STARTED).batch_id


def test_times_entered_after_the_fact_are_kept_apart_from_the_recording(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    batch_id = started(app, facts)
    harvested = STARTED + timedelta(hours=8)
    app.harvest(batch_id, 1, Condition.CRYO, operator(), harvested)
    (receipt,) = events_of(app, ReceivedUnit.Received)
    (start,) = events_of(app, Batch.Started)
    (products,) = events_of(app, Batch.ProductUnitsCreated)
    assert (receipt.received_at, start.started_at, products.created_at) == (
        RECEIVED,
        STARTED,
        harvested,
    )
    assert app.batch(batch_id, reader()).started_at == STARTED  # recorded now (clock.now)


def test_no_batch_start_before_the_receipt_of_its_inputs(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    din = received_at(app, facts)
    with pytest.raises(InvalidInput, match=r"started_at .* before the receipt of unit"):
        app.start_batch([din], None, operator(), RECEIVED - timedelta(minutes=1))


def test_no_harvest_before_the_start(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = started(app, facts)
    with pytest.raises(InvalidInput, match=r"harvested_at .* before the batch's start"):
        app.harvest(batch_id, 1, Condition.CRYO, operator(), STARTED - timedelta(minutes=1))
    assert events_of(app, Batch.ProductUnitsCreated) == []


def test_no_harvest_before_the_last_process_step(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_process_step(batch_id, PRODIGY, operator())  # performed now
    with pytest.raises(InvalidInput, match=r"harvested_at .* before the last process step"):
        app.harvest(batch_id, 1, Condition.CRYO, operator(), clock.now - timedelta(hours=1))


def test_no_failure_before_the_start(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = started(app, facts)
    failing = operator().because("no growth")
    with pytest.raises(InvalidInput, match=r"failed_at .* before the batch's start"):
        app.fail_batch(batch_id, failing, STARTED - timedelta(minutes=1))
    app.fail_batch(batch_id, failing, STARTED + timedelta(hours=10))
    (failed,) = events_of(app, Batch.Failed)
    assert failed.failed_at == STARTED + timedelta(hours=10)


def test_no_step_or_qc_before_the_start() -> None:
    batch = Batch.start(
        [BatchInput(apheresis_din(1), COI, Condition.FRESH_COLD, COLLECTION_END, RECEIVED)],
        STARTED,
        DEFAULT_RULES,
        None,
        operator(),
    )
    early = STARTED - timedelta(seconds=1)
    with pytest.raises(InvalidInput, match=r"performed_at .* before the batch's start"):
        batch.record_step(PRODIGY, early, operator())
    with pytest.raises(InvalidInput, match=r"measured_at .* before the batch's start"):
        batch.record_qc(QcResult("viability", 92.0, "%", True), early, operator())
    batch.record_step(PRODIGY, STARTED, operator())
    assert len(batch.steps) == 1


def test_receipt_in_the_future_is_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    din = apheresis_din(1)
    facts.package(din, COI, Condition.FRESH_COLD)
    book(app, facts)
    with pytest.raises(InvalidInput, match=r"received_at .* is in the future"):
        app.receive_unit(din, COI, operator(), clock.now + timedelta(hours=1))
    assert events_of(app, ReceivedUnit.Received) == []
    receive(app, facts, 2)  # default now
    (unit,) = events_of(app, ReceivedUnit.Received)
    assert unit.received_at == clock.now
