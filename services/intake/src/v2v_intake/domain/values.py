"""Value objects of the intake domain."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import TypeVar

from v2v_platform import limits
from v2v_platform.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)


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
        limits.check_name(self.given_name, "personal_details.given_name")
        limits.check_name(self.family_name, "personal_details.family_name")
        limits.check_id(self.mrn, "personal_details.mrn")

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
