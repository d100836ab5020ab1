"""A manufacturing batch: input units of ONE COI -> steps and QC -> product units or failure.

Invariant I1: a batch's inputs share one COI and its product units inherit it. A fresh input
must start manufacturing within the fresh apheresis window of the site's protocol rules
(collection end -> batch start) unless the start is overridden with a reason and an approval
e-signature. `Started` records the window applied and the rules' tag.

Clinical time (issue 14): a batch starts when its inputs were received or later, its steps,
in-process QC, harvest and failure happen at its start or later, each step at the previous
step or later, and its harvest or failure at its last process step and last in-process QC or
later (InvalidInput naming the field otherwise), all judged on the clinical times the events
carry. Every event of a batch tells its envelope when it happened (`occurred_at`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.values import ProcessStep, QcResult
from v2v_platform.aggregate_cache import immutable
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.ids import Din
from v2v_platform.limits import check_not_before
from v2v_platform.protocol_rules import ProtocolRules

MAX_PRODUCT_UNITS = 20


class BatchStatus(StrEnum):
    RUNNING = "running"
    HARVESTED = "harvested"
    FAILED = "failed"


@dataclass(frozen=True)
class BatchInput:
    """A received unit offered as input: what the rules need to know about it."""

    din: str
    coi: str
    condition: Condition
    window_starts_at: datetime
    received_at: datetime | None = None


def check_single_coi(inputs: Sequence[BatchInput]) -> str:
    if not inputs:
        raise InvalidInput("a batch needs at least one input unit")
    cois = sorted({unit.coi for unit in inputs})
    if len(cois) > 1:
        raise Refused(f"input units belong to different COIs ({', '.join(cois)}); refused (I1)")
    return cois[0]


def late_fresh_inputs(
    inputs: Sequence[BatchInput], started_at: datetime, window: timedelta
) -> list[str]:
    return [
        unit.din
        for unit in inputs
        if unit.condition.is_fresh and started_at - unit.window_starts_at > window
    ]


def check_fresh_window(
    inputs: Sequence[BatchInput],
    started_at: datetime,
    window: timedelta,
    override: WindowOverride | None,
) -> bool:
    """True when the start overrides the window; Refused when it is needed and missing."""
    late = late_fresh_inputs(inputs, started_at, window)
    if late and override is None:
        hours = int(window.total_seconds() // 3600)
        raise Refused(
            f"fresh input(s) {', '.join(late)} are past the {hours} h window from collection"
            " end; starting needs an override with a reason and an approval e-signature"
        )
    return bool(late)


@immutable
@dataclass(frozen=True)
class RecordedStep:
    """A process step as the batch keeps it: immutable all through (tuples, not the event's
    list and dict), so the aggregate cache shares the steps between the copies it hands out
    instead of rebuilding every one of them for every command (`aggregate_cache.immutable`)."""

    step_kind: str
    device_type: str
    device_serial: str
    reagent_lots: tuple[str, ...]
    vector_lot: str
    parameters: tuple[tuple[str, str], ...]
    """(name, value) pairs in the recorded order: `dict(step.parameters)` is the event's."""
    performed_at: datetime

    @classmethod
    def of(cls, recorded: Batch.ProcessStepRecorded) -> RecordedStep:
        return cls(
            recorded.step_kind,
            recorded.device_type,
            recorded.device_serial,
            tuple(recorded.reagent_lots),
            recorded.vector_lot,
            tuple(recorded.parameters.items()),
            recorded.performed_at,
        )


class Batch(Aggregate):
    class Started(AttributedCreated):
        class_version = 2
        manufacturing_site_id: str
        input_dins: list[str]
        started_at: datetime
        fresh_window_hours: int
        window_overridden: bool
        override_signature: dict[str, str] | None
        signature_meaning: str
        protocol_rules: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Started before the rules were versioned: no tag was recorded (as published)."""
            state["protocol_rules"] = ""

        @property
        def occurred_at(self) -> datetime:
            return self.started_at

    class ProcessStepRecorded(AttributedEvent):
        step_kind: str
        device_type: str
        device_serial: str
        reagent_lots: list[str]
        vector_lot: str
        parameters: dict[str, str]
        performed_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.performed_at

        def apply(self, aggregate: Any) -> None:
            aggregate.steps.append(RecordedStep.of(self))

    class InProcessQcRecorded(AttributedEvent):
        test: str
        value: float
        unit: str
        passed: bool
        measured_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.measured_at

        def apply(self, aggregate: Any) -> None:
            aggregate.qc_results.append(QcResult(self.test, self.value, self.unit, self.passed))
            aggregate.qc_measured_at.append(self.measured_at)

    class ProductUnitsCreated(AttributedEvent):
        product_dins: list[str]
        input_dins: list[str]
        hold_condition: str
        created_at: datetime

        @property
        def occurred_at(self) -> datetime:
            return self.created_at

        def apply(self, aggregate: Any) -> None:
            aggregate.product_dins = list(self.product_dins)
            aggregate.hold_condition = Condition(self.hold_condition)
            aggregate.status = BatchStatus.HARVESTED

    class Failed(AttributedEvent):
        failure_reason: str
        # when it failed (clinical time); None on failures recorded before it was kept
        failed_at: datetime | None = None

        @property
        def occurred_at(self) -> datetime:
            """When it failed: before the clinical time was kept, a failure was recorded as it
            happened (the server's clock), so its recording time."""
            return self.failed_at or self.timestamp

        def apply(self, aggregate: Any) -> None:
            aggregate.failure_reason = self.failure_reason
            aggregate.status = BatchStatus.FAILED

    def __init__(
        self,
        coi: str,
        manufacturing_site_id: str,
        input_dins: list[str],
        started_at: datetime,
        window_overridden: bool,
        **_: Any,
    ) -> None:
        self.coi = coi
        self.manufacturing_site_id = manufacturing_site_id
        self.input_dins = list(input_dins)
        self.started_at = started_at
        self.window_overridden = window_overridden
        self.status = BatchStatus.RUNNING
        self.steps: list[RecordedStep] = []
        self.qc_results: list[QcResult] = []
        self.qc_measured_at: list[datetime] = []  # when each of `qc_results` was measured
        self.product_dins: list[str] = []
        self.hold_condition: Condition | None = None
        self.failure_reason = ""

    @property
    def batch_id(self) -> str:
        return str(self.id)

    @classmethod
    def start(
        cls,
        inputs: Sequence[BatchInput],
        started_at: datetime,
        rules: ProtocolRules,
        override: WindowOverride | None,
        by: Attribution,
    ) -> Batch:
        coi = check_single_coi(inputs)
        for unit in inputs:
            check_not_before(
                started_at, "started_at", unit.received_at, f"the receipt of unit {unit.din}"
            )
        overridden = check_fresh_window(inputs, started_at, rules.fresh_apheresis, override)
        signed = override if overridden else None
        attribution = by.because(signed.reason) if signed else by
        return cls._create(
            cls.Started,
            id=uuid4(),
            manufacturing_site_id=by.site_id,
            input_dins=[unit.din for unit in inputs],
            started_at=started_at,
            fresh_window_hours=rules.fresh_apheresis_hours,
            window_overridden=overridden,
            override_signature=signed.signature.as_dict() if signed else None,
            signature_meaning=signed.signature.meaning if signed else "",
            protocol_rules=rules.tag,
            **attributed(attribution, coi),
        )

    def check_running(self, by: Attribution) -> None:
        if by.site_id != self.manufacturing_site_id:
            raise Refused(f"batch {self.batch_id} runs at {self.manufacturing_site_id}")
        if self.status is not BatchStatus.RUNNING:
            raise Refused(f"batch {self.batch_id} is {self.status.value}; nothing more can follow")

    def check_after_start(self, moment: datetime, field: str) -> None:
        check_not_before(moment, field, self.started_at, "the batch's start")

    def last_step(self) -> RecordedStep | None:
        """The process step performed last (clinical time; the first of equals)."""
        return max(self.steps, key=lambda step: step.performed_at, default=None)

    def check_after_steps(self, moment: datetime, field: str) -> None:
        """`moment` at the last process step and the last in-process QC or later."""
        last = self.last_step()
        if last is not None:
            what = f"the last process step ({last.step_kind})"
            check_not_before(moment, field, last.performed_at, what)
        if self.qc_measured_at:
            at, n = max((at, n) for n, at in enumerate(self.qc_measured_at))
            what = f"the last in-process QC ({self.qc_results[n].test})"
            check_not_before(moment, field, at, what)

    def record_step(self, step: ProcessStep, performed_at: datetime, by: Attribution) -> None:
        """Performed at the batch's start or later, and at the previous step or later."""
        self.check_running(by)
        self.check_after_start(performed_at, "performed_at")
        previous = self.last_step()
        if previous is not None:
            what = f"the previous process step ({previous.step_kind})"
            check_not_before(performed_at, "performed_at", previous.performed_at, what)
        self.trigger_event(
            self.ProcessStepRecorded,
            step_kind=step.kind.value,
            device_type=step.device_type,
            device_serial=step.device_serial,
            reagent_lots=list(step.reagent_lots),
            vector_lot=step.vector_lot,
            parameters=dict(step.parameters),
            performed_at=performed_at,
            **attributed(by, self.coi),
        )

    def record_qc(self, result: QcResult, measured_at: datetime, by: Attribution) -> None:
        self.check_running(by)
        self.check_after_start(measured_at, "measured_at")
        self.trigger_event(
            self.InProcessQcRecorded,
            test=result.test,
            value=result.value,
            unit=result.unit,
            passed=result.passed,
            measured_at=measured_at,
            **attributed(by, self.coi),
        )

    def harvest(
        self, product_dins: Sequence[Din], hold: Condition, created_at: datetime, by: Attribution
    ) -> None:
        self.check_running(by)
        check_product_count(len(product_dins))
        self.check_harvest_time(created_at)
        self.trigger_event(
            self.ProductUnitsCreated,
            product_dins=[str(din) for din in product_dins],
            input_dins=list(self.input_dins),
            hold_condition=hold.value,
            created_at=created_at,
            **attributed(by, self.coi),
        )

    def check_harvest_time(self, harvested_at: datetime) -> None:
        """At the start or later, and at the last process step and in-process QC or later."""
        self.check_after_start(harvested_at, "harvested_at")
        self.check_after_steps(harvested_at, "harvested_at")

    def fail(self, failed_at: datetime, by: Attribution) -> None:
        self.check_running(by)
        if not by.reason.strip():
            raise InvalidInput("failing a batch needs a reason")
        self.check_after_start(failed_at, "failed_at")
        self.check_after_steps(failed_at, "failed_at")
        fields = attributed(by, self.coi)
        self.trigger_event(self.Failed, failure_reason=by.reason, failed_at=failed_at, **fields)


def check_product_count(count: int) -> None:
    if not 1 <= count <= MAX_PRODUCT_UNITS:
        raise InvalidInput(f"a harvest creates between 1 and {MAX_PRODUCT_UNITS} product units")
