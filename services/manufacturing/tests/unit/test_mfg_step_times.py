"""Clinical time of process steps and in-process QC (issue 14): `RecordProcessStep` carries
`performed_at` and `RecordInProcessQc` `measured_at` (default now), stored on their events and
published; no step or QC before the batch's start, no step before the previous step, no
harvest or failure before the last step or QC, all judged on those clinical times. A failure
publishes when it happened (`BatchFailed.failed_at`), and the envelope of every event with a
clinical time says when it happened (`occurred_at`: receipt, allocation, start, steps, QC,
harvest, failure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from v2v_manufacturing.adapters.payloads import TRANSLATOR, batch_failed
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_manufacturing.domain.values import ProcessStep, QcResult, StepKind
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.proto_values import from_timestamp
from v2v_testkit.manufacturing import (
    COI,
    COLLECTION_END,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    book,
    operator,
    reader,
)

DAY = timedelta(days=1)
RECEIVED = COLLECTION_END + timedelta(hours=4)
STARTED = COLLECTION_END + timedelta(hours=6)
STEPS = [
    ProcessStep(StepKind.SELECTION, "CliniMACS Prodigy", "PRD-0042", ("CD4/CD8-L1",)),
    ProcessStep(StepKind.ACTIVATION, "CliniMACS Prodigy", "PRD-0042", ("TransAct-7",)),
    ProcessStep(
        StepKind.TRANSDUCTION, "CliniMACS Prodigy", "PRD-0042", ("TexMACS-L9",), "LV-CD19-0031"
    ),
    ProcessStep(StepKind.EXPANSION, "CliniMACS Prodigy", "PRD-0042", ("IL-7/IL-15-L2",)),
]
VIABILITY = QcResult("viability", 91.0, "%", True)


def events_of(app: ManufacturingApplication, kind: type) -> list[Any]:
    events = [app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 1000)]
    return [e for e in events if isinstance(e, kind)]


@pytest.fixture
def weeks_later(clock: Clock) -> Clock:
    """Everything is entered a month after it happened."""
    clock.now = COLLECTION_END + timedelta(days=30)
    return clock


def started(app: ManufacturingApplication, facts: InMemoryManufacturingFacts) -> str:
    din = apheresis_din(1)
    facts.package(din, COI, Condition.FRESH_COLD)
    book(app, facts)
    app.receive_unit(din, COI, operator(), RECEIVED)
    return app.start_batch([din], None, operator(), STARTED).batch_id


def test_a_ten_day_batch_entered_after_the_fact_is_harvested_at_its_clinical_times(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    step_days = [1, 3, 5, 8]
    for step, day in zip(STEPS, step_days, strict=True):
        app.record_process_step(batch_id, step, operator(), STARTED + day * DAY)
    app.record_in_process_qc(batch_id, VIABILITY, operator(), STARTED + 9 * DAY)
    harvested = STARTED + 10 * DAY
    app.harvest(batch_id, 1, Condition.CRYO, operator(), harvested)  # was refused
    recorded = events_of(app, Batch.ProcessStepRecorded)
    assert [e.performed_at for e in recorded] == [STARTED + d * DAY for d in step_days]
    assert all(e.timestamp > e.performed_at for e in recorded)  # recorded later, apart
    (qc,) = events_of(app, Batch.InProcessQcRecorded)
    assert qc.measured_at == STARTED + 9 * DAY
    (products,) = events_of(app, Batch.ProductUnitsCreated)
    assert products.created_at == harvested
    view = app.batch(batch_id, reader())
    assert [s.performed_at for s in view.steps] == [STARTED + d * DAY for d in step_days]
    assert view.status == "harvested"


def test_steps_and_qc_default_to_now(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_process_step(batch_id, STEPS[0], operator())
    app.record_in_process_qc(batch_id, VIABILITY, operator())
    (step,) = events_of(app, Batch.ProcessStepRecorded)
    (qc,) = events_of(app, Batch.InProcessQcRecorded)
    assert (step.performed_at, qc.measured_at) == (clock.now, clock.now)


def test_no_step_before_the_batch_start(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = started(app, facts)
    early = STARTED - timedelta(minutes=1)
    with pytest.raises(InvalidInput, match=r"performed_at .* before the batch's start"):
        app.record_process_step(batch_id, STEPS[0], operator(), early)
    assert events_of(app, Batch.ProcessStepRecorded) == []


def test_no_qc_before_the_batch_start(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    batch_id = started(app, facts)
    early = STARTED - timedelta(minutes=1)
    with pytest.raises(InvalidInput, match=r"measured_at .* before the batch's start"):
        app.record_in_process_qc(batch_id, VIABILITY, operator(), early)
    assert events_of(app, Batch.InProcessQcRecorded) == []


def test_no_step_before_the_previous_step(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_process_step(batch_id, STEPS[0], operator(), STARTED + 2 * DAY)
    with pytest.raises(
        InvalidInput, match=r"performed_at .* before the previous process step \(selection\)"
    ):
        app.record_process_step(batch_id, STEPS[1], operator(), STARTED + DAY)
    app.record_process_step(batch_id, STEPS[1], operator(), STARTED + 2 * DAY)  # same time: ok
    assert len(events_of(app, Batch.ProcessStepRecorded)) == 2


def test_steps_and_qc_in_the_future_are_refused(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    batch_id = started(app, facts)
    later = clock.now + timedelta(hours=1)
    with pytest.raises(InvalidInput, match=r"performed_at .* is in the future"):
        app.record_process_step(batch_id, STEPS[0], operator(), later)
    with pytest.raises(InvalidInput, match=r"measured_at .* is in the future"):
        app.record_in_process_qc(batch_id, VIABILITY, operator(), later)


def test_no_harvest_before_the_last_step_as_performed(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_process_step(batch_id, STEPS[0], operator(), STARTED + 6 * DAY)
    with pytest.raises(
        InvalidInput, match=r"harvested_at .* before the last process step \(selection\)"
    ):
        app.harvest(batch_id, 1, Condition.CRYO, operator(), STARTED + 5 * DAY)
    assert events_of(app, Batch.ProductUnitsCreated) == []


def test_no_harvest_before_the_last_in_process_qc(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_in_process_qc(batch_id, VIABILITY, operator(), STARTED + 9 * DAY)
    with pytest.raises(
        InvalidInput, match=r"harvested_at .* before the last in-process QC \(viability\)"
    ):
        app.harvest(batch_id, 1, Condition.CRYO, operator(), STARTED + 8 * DAY)


def test_no_failure_before_the_last_step_or_qc(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    failing = operator().because("no expansion")
    app.record_process_step(batch_id, STEPS[0], operator(), STARTED + 3 * DAY)
    with pytest.raises(
        InvalidInput, match=r"failed_at .* before the last process step \(selection\)"
    ):
        app.fail_batch(batch_id, failing, STARTED + 2 * DAY)
    app.record_in_process_qc(batch_id, VIABILITY, operator(), STARTED + 7 * DAY)
    with pytest.raises(
        InvalidInput, match=r"failed_at .* before the last in-process QC \(viability\)"
    ):
        app.fail_batch(batch_id, failing, STARTED + 6 * DAY)
    assert events_of(app, Batch.Failed) == []
    app.fail_batch(batch_id, failing, STARTED + 7 * DAY)
    (failed,) = events_of(app, Batch.Failed)
    assert failed.failed_at == STARTED + 7 * DAY


def test_batch_failed_publishes_when_the_batch_failed(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    failed_at = STARTED + 4 * DAY
    app.fail_batch(batch_id, operator().because("no expansion"), failed_at)
    (failed,) = events_of(app, Batch.Failed)
    assert from_timestamp(batch_failed(failed).failed_at) == failed_at
    outbound = TRANSLATOR.translate(failed)
    assert outbound is not None
    assert outbound.content.occurred_at == failed_at  # the envelope: when it happened
    assert outbound.content.recorded_at == failed.timestamp != failed_at


def test_a_failure_stored_before_failed_at_was_kept_publishes_its_recording_time() -> None:
    recorded = datetime(2025, 6, 9, 12, 0, tzinfo=COLLECTION_END.tzinfo)
    failed: Any = Batch.Failed
    old = failed(  # as stored before the clinical time was kept: no failed_at
        originator_id=uuid4(),
        originator_version=3,
        timestamp=recorded,
        coi=COI,
        actor={"user_id": "u-op", "printed_name": "Operator", "role": "manufacturing"},
        site_id="GMP-B",
        reason="no growth",
        traceparent=None,
        failure_reason="no growth",
    )
    assert from_timestamp(batch_failed(old).failed_at) == recorded


def test_batch_events_carry_their_clinical_time_in_the_envelope(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, weeks_later: Clock
) -> None:
    batch_id = started(app, facts)
    app.record_process_step(batch_id, STEPS[0], operator(), STARTED + DAY)
    app.record_in_process_qc(batch_id, VIABILITY, operator(), STARTED + 2 * DAY)
    app.harvest(batch_id, 1, Condition.CRYO, operator(), STARTED + 3 * DAY)
    occurred = {}
    for kind in (
        ReceivedUnit.Received,
        ReceivedUnit.AllocatedToBatch,
        Batch.Started,
        Batch.ProcessStepRecorded,
        Batch.InProcessQcRecorded,
        Batch.ProductUnitsCreated,
    ):
        (event,) = events_of(app, kind)
        outbound = TRANSLATOR.translate(event)
        assert outbound is not None
        occurred[kind.__name__] = outbound.content.occurred_at
    assert occurred == {
        "Received": RECEIVED,
        "AllocatedToBatch": STARTED,  # taken as input when the batch started
        "Started": STARTED,
        "ProcessStepRecorded": STARTED + DAY,
        "InProcessQcRecorded": STARTED + 2 * DAY,
        "ProductUnitsCreated": STARTED + 3 * DAY,
    }
