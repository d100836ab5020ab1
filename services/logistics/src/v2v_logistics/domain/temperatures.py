"""Temperature excursions: consecutive readings outside the condition's range (I5), the range
given by the site's `ProtocolRules` (`rules.temperature_range_c(condition)`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from v2v_logistics.domain.values import Reading


@dataclass(frozen=True)
class Excursion:
    """A run of out-of-range readings: from the first to the last of them."""

    device_id: str
    started_at: datetime
    ended_at: datetime
    min_c: float
    max_c: float

    @property
    def duration(self) -> timedelta:
        return self.ended_at - self.started_at


TemperatureRange = tuple[float, float]
"""(lowest, highest) allowed, in °C."""


def in_range(range_c: TemperatureRange, temperature_c: float) -> bool:
    low, high = range_c
    return low <= temperature_c <= high


def excursions(range_c: TemperatureRange, readings: Sequence[Reading]) -> list[Excursion]:
    """The excursions of `readings` (any order) outside `range_c`, in time order."""
    found: list[Excursion] = []
    run: list[Reading] = []
    for reading in sorted(readings, key=lambda r: r.measured_at):
        if in_range(range_c, reading.temperature_c):
            if run:
                found.append(_excursion(run))
            run = []
        else:
            run.append(reading)
    if run:
        found.append(_excursion(run))
    return found


def _excursion(run: Sequence[Reading]) -> Excursion:
    temperatures = [r.temperature_c for r in run]
    return Excursion(
        run[0].device_id,
        run[0].measured_at,
        run[-1].measured_at,
        min(temperatures),
        max(temperatures),
    )
