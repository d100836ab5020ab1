"""Value objects of the manufacturing domain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from v2v_platform import limits
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.limits import MAX_ID_CHARS, echo


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
        raise InvalidInput(
            f"condition {echo(text, MAX_ID_CHARS)!r} is not one of {allowed}"
        ) from None


def parse_step_kind(text: str) -> StepKind:
    try:
        return StepKind(text)
    except ValueError:
        allowed = ", ".join(k.value for k in StepKind)
        raise InvalidInput(
            f"step kind {echo(text, MAX_ID_CHARS)!r} is not one of {allowed}"
        ) from None


def parse_slot_date(text: str) -> date:
    limits.check_id(text, "slot_date")
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
    other_cois: tuple[str, ...] = ()
    """Other COIs verified facts bind this DIN to (issue 14): any = an identity conflict."""

    @property
    def din_data(self) -> str:
        return self.din[:13]


@dataclass(frozen=True)
class Enrolment:
    """A COI as intake enrolled it (from its verified `PatientEnrolled`): the site that
    enrolled the patient (the one that books the COI's slots) and the treating site."""

    coi: str
    enrolling_site_id: str
    treating_site_id: str


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
        limits.check_name(self.device_type, "device_type")
        limits.check_id(self.device_serial, "device_serial")
        limits.check_id(self.vector_lot, "vector_lot")
        limits.check_items(self.reagent_lots, "reagent_lots")
        for n, lot in enumerate(self.reagent_lots):
            limits.check_id(lot, f"reagent_lots[{n}]")
        limits.check_items(self.parameters, "parameters", limits.MAX_PARAMETERS)
        for name, value in self.parameters.items():
            limits.check_id(name, "parameters (a name)")
            limits.check_name(value, f"parameters[{echo(name, MAX_ID_CHARS)}]")
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
        limits.check_id(self.test, "test")
        limits.check_id(self.unit, "unit")
        limits.check_finite(self.value, "value")
