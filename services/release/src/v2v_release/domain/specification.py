"""Release specifications are versioned DATA: which tests, how each result is judged, and from
when a version is in force. A batch is judged against the version in force when it started.

A numeric criterion has a minimum or a maximum and the unit the value must be reported in; a
qualitative one expects "negative" (judged negative/positive) or "absent" (absent/detected),
case-insensitive. A criterion that names a method accepts results by that method only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from v2v_platform.errors import InvalidInput, Refused

QUALITATIVE_OUTCOMES = {"negative": "positive", "absent": "detected"}


class Phase(StrEnum):
    PRE_RELEASE = "pre-release"
    POST_RELEASE = "post-release"


@dataclass(frozen=True)
class Judgement:
    passed: bool
    criterion: str


@dataclass(frozen=True)
class Criterion:
    """One test of a specification: exactly one of minimum, maximum or expected."""

    test: str
    phase: Phase
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    expected: str = ""
    method: str = ""

    def __post_init__(self) -> None:
        if not self.test.strip():
            raise ValueError("a criterion needs a test code")
        limits = [self.minimum is not None, self.maximum is not None, bool(self.expected)]
        if sum(limits) != 1:
            raise ValueError(f"{self.test}: give exactly one of minimum, maximum or expected")
        if self.expected and self.expected not in QUALITATIVE_OUTCOMES:
            raise ValueError(f"{self.test}: expected must be one of negative, absent")
        if self.is_numeric and not self.unit.strip():
            raise ValueError(f"{self.test}: a numeric criterion needs its unit")
        if not self.is_numeric and self.unit:
            raise ValueError(f"{self.test}: a qualitative criterion has no unit")

    @property
    def is_numeric(self) -> bool:
        return not self.expected

    @property
    def text(self) -> str:
        """Human-readable, e.g. ">= 70 %", "<= 0.5 EU/mL", "negative by PCR"."""
        if self.minimum is not None:
            shown = f">= {self.minimum:g} {self.unit}"
        elif self.maximum is not None:
            shown = f"<= {self.maximum:g} {self.unit}"
        else:
            shown = self.expected
        return f"{shown} by {self.method}" if self.method else shown

    def judge(self, value: str, unit: str, method: str) -> Judgement:
        self._check_method(method)
        if self.is_numeric:
            passed = self._judge_number(value, unit)
        else:
            passed = self._judge_outcome(value, unit)
        return Judgement(passed, self.text)

    def _check_method(self, method: str) -> None:
        if self.method and method.strip().casefold() != self.method.casefold():
            raise InvalidInput(
                f"{self.test} must be tested by {self.method}, not {method.strip() or '(none)'}"
            )

    def _judge_number(self, value: str, unit: str) -> bool:
        if unit.strip() != self.unit:
            raise InvalidInput(f"{self.test} is reported in {self.unit!r}, not {unit.strip()!r}")
        number = parse_number(self.test, value)
        if self.minimum is not None:
            return number >= self.minimum
        assert self.maximum is not None
        return number <= self.maximum

    def _judge_outcome(self, value: str, unit: str) -> bool:
        if unit.strip():
            raise InvalidInput(f"{self.test} is qualitative: report it without a unit")
        outcome = value.strip().casefold()
        failing = QUALITATIVE_OUTCOMES[self.expected]
        if outcome not in (self.expected, failing):
            raise InvalidInput(
                f"{self.test} is reported as {self.expected} or {failing}, not {value.strip()!r}"
            )
        return outcome == self.expected

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "phase": self.phase.value}

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> Criterion:
        return cls(**{**stored, "phase": Phase(stored["phase"])})


def parse_number(test: str, value: str) -> float:
    try:
        number = float(value.strip())
    except ValueError:
        raise InvalidInput(f"{test} needs a number, not {value.strip()!r}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"{test} needs a finite number, not {value.strip()!r}")
    return number


@dataclass(frozen=True)
class ReleaseSpecification:
    version: str
    effective_from: datetime
    criteria: tuple[Criterion, ...]

    def __post_init__(self) -> None:
        if not self.version.strip():
            raise ValueError("a specification needs a version")
        if self.effective_from.tzinfo is None:
            raise ValueError(f"specification {self.version}: effective_from needs a time zone")
        if not self.criteria:
            raise ValueError(f"specification {self.version} has no criteria")
        tests = [c.test for c in self.criteria]
        if len(set(tests)) != len(tests):
            raise ValueError(f"specification {self.version} lists a test twice")

    @property
    def tests(self) -> list[str]:
        return [c.test for c in self.criteria]


SPEC_V1 = ReleaseSpecification(
    "v1",
    datetime(2020, 1, 1, tzinfo=UTC),
    (
        Criterion("viability", Phase.PRE_RELEASE, "%", minimum=70),
        Criterion("cd3", Phase.PRE_RELEASE, "%", minimum=70),
        Criterion("car", Phase.PRE_RELEASE, "%", minimum=20),
        Criterion("dose", Phase.PRE_RELEASE, "10^6 CAR+ cells/kg", minimum=0.5),
        Criterion("endotoxin", Phase.PRE_RELEASE, "EU/mL", maximum=0.5),
        Criterion("mycoplasma", Phase.PRE_RELEASE, expected="negative", method="PCR"),
        Criterion("sterility", Phase.POST_RELEASE, expected="negative"),
        Criterion("vcn", Phase.POST_RELEASE, "copies/transduced cell", maximum=5),
        Criterion("rcl", Phase.POST_RELEASE, expected="absent"),
    ),
)


class SpecificationCatalog:
    """The configured versions: the built-in v1 plus any extra ones."""

    def __init__(self, extra: Iterable[ReleaseSpecification] = ()) -> None:
        versions = [SPEC_V1, *extra]
        names = [s.version for s in versions]
        if len(set(names)) != len(names):
            raise ValueError(f"specification versions must be unique, got {', '.join(names)}")
        starts = [s.effective_from for s in versions]
        if len(set(starts)) != len(starts):
            raise ValueError("two specification versions take effect at the same time")
        self._versions = sorted(versions, key=lambda s: s.effective_from, reverse=True)

    @property
    def newest_first(self) -> Sequence[ReleaseSpecification]:
        return list(self._versions)

    def in_force_at(self, moment: datetime) -> ReleaseSpecification:
        for specification in self._versions:
            if specification.effective_from <= moment:
                return specification
        raise Refused(f"no release specification was in force at {moment.isoformat()}")
