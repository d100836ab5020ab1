"""Batches: start from received units of one COI (within the fresh apheresis window, or
overridden), process steps and in-process QC, failure, harvest into product units, and the
batch read (the batch's manufacturing site and auditors).

A start from units of several COIs is refused and recorded first, on the chain of each of
those COIs (`BatchInputsMismatch`, I1 and I2); nothing else changes. So is a start from a unit
whose DIN verified facts bind to more than one COI (`identity-conflict`, issue 14): recorded on
the chain of every COI of the inputs and of every COI that DIN is bound to."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

from v2v_manufacturing.domain.batch import Batch, BatchInput, check_product_count
from v2v_manufacturing.domain.batch_mismatch import (
    BatchInputsMismatch,
    InputsMismatch,
    match_inputs,
)
from v2v_manufacturing.domain.receipt import ReceivedUnit
from v2v_manufacturing.domain.values import ProcessStep, QcResult
from v2v_manufacturing.views import BatchView
from v2v_platform import limits
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.ids import Din
from v2v_platform.ids.bindings import IDENTITY_CONFLICT
from v2v_platform.scope import Scope
from v2v_platform.service_application import parse_din

if TYPE_CHECKING:
    from v2v_manufacturing.application import ManufacturingApplication

BatchChange = Callable[[Batch, Attribution], None]


class Batches:
    def __init__(self, app: ManufacturingApplication) -> None:
        self.app = app

    def start(
        self,
        input_dins: Sequence[str],
        override: WindowOverride | None,
        by: Attribution,
        started_at: datetime | None = None,
    ) -> BatchView:
        """`started_at`: when the batch started (clinical time; default now)."""
        by = self.app.check_local(by)
        at = self.app.when(started_at, "started_at")
        limits.check_items(input_dins, "input_dins")
        self.app.check_override(override, "window_override")
        dins = [parse_din(text) for text in input_dins]
        if len({din.data for din in dins}) != len(dins):
            raise InvalidInput("an input unit is listed twice")

        def attempt() -> BatchView:
            units = [self._received(din) for din in dins]
            inputs = [
                BatchInput(u.din, u.coi, u.condition, u.window_starts_at, u.received_at)
                for u in units
            ]
            self._refuse_conflicted_dins(inputs, at, by)
            self._refuse_mixed_cois(inputs, at, by)
            batch = Batch.start(inputs, at, self.app.rules, override, by)
            for unit in units:
                unit.allocate(batch.batch_id, batch.started_at, by)
            self.app.save(batch, *units)
            return BatchView.of(batch)

        return self.app.retrying(attempt)

    def _refuse_mixed_cois(self, inputs: list[BatchInput], at: datetime, by: Attribution) -> None:
        """Inputs of several COIs: recorded on each chain at risk, then refused (I1, I2)."""
        mismatch = match_inputs(inputs)
        if mismatch is not None:
            self._refuse(inputs, mismatch, at, by)

    def _refuse_conflicted_dins(
        self, inputs: list[BatchInput], at: datetime, by: Attribution
    ) -> None:
        """An input whose DIN is bound to two COIs: recorded on each chain at risk, then
        refused (I1, I2)."""
        conflicts = [
            conflict
            for unit in inputs
            if (conflict := self.app.facts.identity_conflict(unit.din[:13])) is not None
        ]
        if not conflicts:
            return
        at_risk = {unit.coi for unit in inputs}.union(*(c.cois for c in conflicts))
        explanation = "; ".join(conflict.explanation for conflict in conflicts)
        mismatch = InputsMismatch(IDENTITY_CONFLICT, explanation, tuple(sorted(at_risk)))
        self._refuse(inputs, mismatch, at, by)

    def _refuse(
        self, inputs: list[BatchInput], mismatch: InputsMismatch, at: datetime, by: Attribution
    ) -> None:
        """Recorded as refused `at` the time the start was attempted (clinical), then refused."""
        self.app.save(*BatchInputsMismatch.on_each_chain(inputs, mismatch, at, by))
        raise Refused(f"batch start refused ({mismatch.reason_code}): {mismatch.explanation}")

    def record_step(
        self,
        batch_id: str,
        step: ProcessStep,
        by: Attribution,
        performed_at: datetime | None = None,
    ) -> None:
        """`performed_at`: when the step was performed (clinical time; default now)."""
        at = self.app.when(performed_at, "performed_at")
        self._change(batch_id, by, lambda b, by: b.record_step(step, at, by))

    def record_qc(
        self,
        batch_id: str,
        result: QcResult,
        by: Attribution,
        measured_at: datetime | None = None,
    ) -> None:
        """`measured_at`: when the result was measured (clinical time; default now)."""
        at = self.app.when(measured_at, "measured_at")
        self._change(batch_id, by, lambda b, by: b.record_qc(result, at, by))

    def fail(self, batch_id: str, by: Attribution, failed_at: datetime | None = None) -> None:
        """`failed_at`: when the batch failed (clinical time; default now)."""
        at = self.app.when(failed_at, "failed_at")
        self._change(batch_id, by, lambda b, by: b.fail(at, by))

    def harvest(
        self,
        batch_id: str,
        product_unit_count: int,
        hold: Condition,
        by: Attribution,
        harvested_at: datetime | None = None,
    ) -> list[str]:
        """`harvested_at`: when the product units were harvested (clinical time; default now);
        their DINs are numbered in the year they are recorded."""
        by = self.app.check_local(by)
        at = self.app.when(harvested_at, "harvested_at")
        if not self.app.fin:
            raise Refused("this service has no facility identification number (V2V_FIN)")
        check_product_count(product_unit_count)

        def attempt() -> list[str]:
            batch = self._batch(batch_id)
            batch.check_running(by)
            batch.check_harvest_time(at)
            now = self.app.clock()
            # first the numbers (unpublished records), then the batch; a retry gets the same
            dins = self.app.unpublished.reserve_product_dins(
                self.app.fin, now.year % 100, product_unit_count, batch.batch_id, batch.coi, by
            )
            batch.harvest(dins, hold, at, by)
            self.app.save(batch)
            return [str(din) for din in dins]

        return self.app.retrying(attempt)

    def read(self, batch_id: str, scope: Scope) -> BatchView:
        """The batch, to its manufacturing site and to the sites that read everything
        (auditors); NotFound, as if absent, to any other site."""
        batch = self._batch(batch_id)
        scope.require_sees([batch.manufacturing_site_id], f"batch {batch_id}")
        return BatchView.of(batch)

    def _change(self, batch_id: str, by: Attribution, change: BatchChange) -> None:
        by = self.app.check_local(by)

        def attempt() -> None:
            batch = self._batch(batch_id)
            change(batch, by)
            self.app.save(batch)

        self.app.retrying(attempt)

    def _batch(self, batch_id: str) -> Batch:
        try:
            aggregate_id = UUID(batch_id)
        except ValueError:
            shown = limits.echo(batch_id, limits.MAX_ID_CHARS)
            raise InvalidInput(f"batch id {shown!r} is not a UUID") from None
        return self.app.get(Batch, aggregate_id, "batch")

    def _received(self, din: Din) -> ReceivedUnit:
        unit = self.app.find(ReceivedUnit, ReceivedUnit.create_id(din.data))
        if unit is None:
            raise Refused(f"unit {din} has not been received here")
        return unit
