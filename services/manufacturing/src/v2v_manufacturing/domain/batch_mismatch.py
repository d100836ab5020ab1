"""A batch start refused because its input units belong to more than one COI (I1), recorded on
the chain of EACH of those COIs (I2) before the refusal is raised: both patients' chains show
that their cells were offered together. Nothing else changes (no batch, no allocation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import uuid4

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.batch import BatchInput
from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import AttributedCreated, attributed

MIXED_COI = "mixed-coi"


@dataclass(frozen=True)
class InputsMismatch:
    """Why a batch's inputs were refused: a machine-readable code and a sentence for people."""

    reason_code: str
    explanation: str
    cois: tuple[str, ...]
    """The chains at risk: every COI the inputs belong to, sorted."""


def match_inputs(inputs: Sequence[BatchInput]) -> InputsMismatch | None:
    """None when every input unit belongs to one COI (I1)."""
    cois = tuple(sorted({unit.coi for unit in inputs}))
    if len(cois) < 2:
        return None
    shown = ", ".join(f"{unit.din} ({unit.coi})" for unit in inputs)
    explanation = (
        f"input units belong to different COIs ({', '.join(cois)}): {shown}; a batch is made"
        " from ONE patient's cells (I1): STOP, refused and recorded on each patient's chain"
    )
    return InputsMismatch(MIXED_COI, explanation, cois)


class BatchInputsMismatch(Aggregate):
    """One refused batch start on one chain at risk (`coi`): the inputs and their COIs."""

    class Recorded(AttributedCreated):
        input_dins: list[str]
        input_cois: list[str]
        reason_code: str
        explanation: str
        manufacturing_site_id: str
        refused_at: datetime

        @property
        def occurred_at(self) -> datetime:
            """When the start was attempted (clinical time): the envelope's occurred_at."""
            return self.refused_at

    def __init__(self, input_dins: list[str], reason_code: str, **_: Any) -> None:
        self.input_dins = list(input_dins)
        self.reason_code = reason_code

    @classmethod
    def record(
        cls,
        inputs: Sequence[BatchInput],
        mismatch: InputsMismatch,
        coi: str,
        refused_at: datetime,
        by: Attribution,
    ) -> BatchInputsMismatch:
        recorded: BatchInputsMismatch = cls._create(
            cls.Recorded,
            id=uuid4(),
            input_dins=[unit.din for unit in inputs],
            input_cois=[unit.coi for unit in inputs],
            reason_code=mismatch.reason_code,
            explanation=mismatch.explanation,
            manufacturing_site_id=by.site_id,
            refused_at=refused_at,
            **attributed(by, coi),
        )
        return recorded

    @classmethod
    def on_each_chain(
        cls,
        inputs: Sequence[BatchInput],
        mismatch: InputsMismatch,
        refused_at: datetime,
        by: Attribution,
    ) -> list[BatchInputsMismatch]:
        """One record per chain at risk (every COI of the inputs)."""
        return [cls.record(inputs, mismatch, coi, refused_at, by) for coi in mismatch.cois]
