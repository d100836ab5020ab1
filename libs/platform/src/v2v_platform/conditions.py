"""Storage and transport conditions (DESIGN.md section 2): a shared kernel of every context."""

from __future__ import annotations

from enum import StrEnum

from v2v_platform.errors import Refused

ABSOLUTE_ZERO_C = -273.15


class Condition(StrEnum):
    """Fresh 2-8 °C, fresh 15-25 °C, or cryopreserved at <= -150 °C."""

    FRESH_COLD = "fresh-cold"
    FRESH_AMBIENT = "fresh-ambient"
    CRYO = "cryo"

    @property
    def is_fresh(self) -> bool:
        return self is not Condition.CRYO

    @property
    def temperature_range_c(self) -> tuple[float, float]:
        return TEMPERATURE_RANGES_C[self]

    def check_temperature(self, temperature_c: float) -> None:
        low, high = self.temperature_range_c
        if not low <= temperature_c <= high:
            shown = f"<= {high:g}" if self is Condition.CRYO else f"{low:g} to {high:g}"
            raise Refused(
                f"temperature {temperature_c:g} °C is outside the {self.value} range ({shown} °C)"
            )


TEMPERATURE_RANGES_C = {
    Condition.FRESH_COLD: (2.0, 8.0),
    Condition.FRESH_AMBIENT: (15.0, 25.0),
    Condition.CRYO: (ABSOLUTE_ZERO_C, -150.0),
}
