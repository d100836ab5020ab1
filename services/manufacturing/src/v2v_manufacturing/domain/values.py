"""Value objects of the manufacturing domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput


class StepKind(StrEnum):
    SELECTION = "selection"
    ACTIVATION = "activation"
    TRANSDUCTION = "transduction"
    EXPANSION = "expansion"
    HARVEST = "harvest"
    FORMULATION = "formulation"


def parse_condition(text: str) -> Condition:
    try:
        return Condition(text)
    except ValueError:
        allowed = ", ".join(c.value for c in Condition)
        raise InvalidInput(f"condition {text!r} is not one of {allowed}") from None


def parse_step_kind(text: str) -> StepKind:
    try:
        return StepKind(text)
    except ValueError:
        allowed = ", ".join(k.value for k in StepKind)
        raise InvalidInput(f"step kind {text!r} is not one of {allowed}") from None


def parse_slot_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"slot date {text!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def require_text(name: str, value: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{name} is required")
    return value.strip()


@dataclass(frozen=True)
class ExpectedUnit:
    """A unit intake packaged for a manufacturing site (from intake's events)."""

    din: str
    coi: str
    condition: Condition
    window_starts_at: datetime
    manufacturing_site_id: str

    @property
    def din_data(self) -> str:
        return self.din[:13]


@dataclass(frozen=True)
class ProcessStep:
    kind: StepKind
    device_type: str
    device_serial: str
    reagent_lots: tuple[str, ...] = ()
    vector_lot: str = ""
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        require_text("device type", self.device_type)
        require_text("device serial", self.device_serial)
        if any(not lot.strip() for lot in self.reagent_lots):
            raise InvalidInput("reagent lots must not be blank")
        if self.kind is StepKind.TRANSDUCTION and not self.vector_lot.strip():
            raise InvalidInput("a transduction step needs the vector lot")


@dataclass(frozen=True)
class QcResult:
    test: str
    value: float
    unit: str
    passed: bool

    def __post_init__(self) -> None:
        require_text("QC test", self.test)
        require_text("QC unit", self.unit)
