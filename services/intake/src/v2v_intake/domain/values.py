"""Value objects of the intake domain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TypeVar

from v2v_platform.errors import InvalidInput, Refused

ABSOLUTE_ZERO_C = -273.15
E = TypeVar("E", bound=StrEnum)


class Condition(StrEnum):
    """How a unit is packaged: fresh (cold or ambient) or cryopreserved."""

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


class UnitKind(StrEnum):
    APHERESIS_BAG = "apheresis-bag"
    QC_SAMPLE = "qc-sample"


class UnitStatus(StrEnum):
    LABELLED = "labelled"
    FIRST_SCAN_DONE = "first-scan-done"
    VERIFIED = "verified"
    PACKAGED = "packaged"


def parse_choice(kind: type[E], value: str, what: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise InvalidInput(f"{what} {value!r} is not one of: {allowed}") from None


@dataclass(frozen=True)
class PersonalDetails:
    """Who the patient is. Never stored or published in clear."""

    given_name: str
    family_name: str
    mrn: str
    birth_date: date

    def __post_init__(self) -> None:
        for name in ("given_name", "family_name", "mrn"):
            if not str(getattr(self, name)).strip():
                raise InvalidInput(f"personal details: {name} is required")

    def to_bytes(self) -> bytes:
        fields = {
            "given_name": self.given_name,
            "family_name": self.family_name,
            "mrn": self.mrn,
            "birth_date": self.birth_date.isoformat(),
        }
        return json.dumps(fields, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PersonalDetails:
        fields = json.loads(data)
        return cls(
            fields["given_name"],
            fields["family_name"],
            fields["mrn"],
            date.fromisoformat(fields["birth_date"]),
        )


@dataclass(frozen=True)
class BookedSlot:
    slot_id: str
    manufacturing_site_id: str
    slot_date: date
