"""Value objects of the infusion domain: facts learned from other contexts, reason codes and
adverse event grading. (The stability windows this site applies are its `ProtocolRules`.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from v2v_platform import limits
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput, Refused
from v2v_platform.ids.bindings import IDENTITY_CONFLICT as IDENTITY_CONFLICT
from v2v_platform.limits import MAX_ID_CHARS, echo

NAMESPACE = UUID("3d9b7c21-4e6f-5a80-b1c2-9f8e7d6c5b4a")

MALFORMED_LABEL = "malformed-label"
UNKNOWN_UNIT = "unknown-unit"
NOT_RECEIVED = "not-received"
COI_MISMATCH = "coi-mismatch"
REJECTED = "rejected"
NOT_RELEASED = "not-released"
UNACKNOWLEDGED_FAILURE = "unacknowledged-failure"
WINDOW_EXPIRED = "window-expired"
ALREADY_INFUSED = "already-infused"
SAME_USER = "same-user"
NOT_TREATING_SITE = "not-treating-site"

PHYSICIAN = "physician"
NURSE = "nurse"
"""The signer role (in infusion's signer store) of the persons of the two-person checks: both
bedside scans and the infusion's witness."""


class ReleaseStatus(StrEnum):
    """A batch's release as this site knows it from release's events (strongest last)."""

    NONE = "none"
    PROVISIONAL = "provisional"
    OOS_ACCEPTED = "oos-accepted"
    FINAL = "final"
    REJECTED = "rejected"

    @property
    def releases(self) -> bool:
        """Provisional, final or accepted OOS: the product may be infused (I4)."""
        return self in (ReleaseStatus.PROVISIONAL, ReleaseStatus.FINAL, ReleaseStatus.OOS_ACCEPTED)


@dataclass(frozen=True)
class Mismatch:
    """Why a scan was refused: a machine-readable reason code and a sentence for people."""

    reason_code: str
    explanation: str


class SafetyRefused(Refused):
    """A step refused by a safety rule, with the rule's reason code (`mismatch`)."""

    def __init__(self, mismatch: Mismatch, what: str) -> None:
        super().__init__(f"{what} refused ({mismatch.reason_code}): {mismatch.explanation}")
        self.mismatch = mismatch

    @property
    def reason_code(self) -> str:
        return self.mismatch.reason_code


class ScanRefused(SafetyRefused):
    """A receipt or bedside scan was refused by a safety rule; it was recorded (I2)."""

    def __init__(self, mismatch: Mismatch, where: str = "scan") -> None:
        super().__init__(mismatch, where)


class InfusionRefused(SafetyRefused):
    """The infusion of a verified unit was refused: it no longer belongs here, or its
    release, failures or window changed."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(mismatch, "infusion")


class StepRefused(SafetyRefused):
    """Storage or thaw of a unit that no longer belongs here (`domain.site_rules`)."""


@dataclass(frozen=True)
class KnownProduct:
    """A product unit manufacturing created (from ProductUnitsCreated)."""

    din: str
    coi: str
    batch_id: str
    condition: Condition
    other_cois: tuple[str, ...] = ()
    """Other COIs verified facts bind this DIN to (issue 14): any = an identity conflict."""

    @property
    def din_data(self) -> str:
        return self.din[:13]


@dataclass(frozen=True)
class KnownInfusion:
    """A unit infused at some site (from InfusionAdministered on infusion's own topic, by any
    site: the envelope's verified author)."""

    din: str
    coi: str
    site_id: str
    administered_at: datetime


@dataclass(frozen=True)
class ReleaseState:
    """A batch's release status and its earliest release time (None until released)."""

    status: ReleaseStatus = ReleaseStatus.NONE
    released_at: datetime | None = None


@dataclass(frozen=True)
class FailureAlert:
    """A post-release failure of a batch (from PostReleaseFailureRecorded)."""

    failure_id: str
    coi: str
    batch_id: str
    product_dins: tuple[str, ...]
    test: str
    value: str
    criterion: str
    result_at: datetime
    raised_at: datetime


class AdverseEventKind(StrEnum):
    """ASTCT consensus: cytokine release syndrome or immune effector cell-associated
    neurotoxicity syndrome."""

    CRS = "crs"
    ICANS = "icans"


def parse_adverse_kind(text: str) -> AdverseEventKind:
    try:
        return AdverseEventKind(text.strip().lower())
    except ValueError:
        shown = echo(text, MAX_ID_CHARS)
        raise InvalidInput(f"adverse event kind {shown!r} is not one of crs, icans") from None


def check_grade(grade: int) -> int:
    if not 1 <= grade <= 4:
        raise InvalidInput(f"ASTCT grade must be 1 to 4, got {grade}")
    return grade


def check_dose(dose_car_cells_per_kg: float, volume_ml: float) -> None:
    limits.check_finite(dose_car_cells_per_kg, "dose_car_cells_per_kg")
    limits.check_finite(volume_ml, "volume_ml")
    if not dose_car_cells_per_kg > 0:
        raise InvalidInput(f"the dose must be > 0 CAR+ cells/kg, got {dose_car_cells_per_kg:g}")
    if not volume_ml > 0:
        raise InvalidInput(f"the infused volume must be > 0 mL, got {volume_ml:g}")


def require_text(name: str, value: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{name} is required")
    return value.strip()


def operator(user_id: str, printed_name: str, field: str = "witnessed_by") -> dict[str, str]:
    """A person as events record them (user id and printed name)."""
    limits.check_id(user_id, f"{field}.user_id")
    limits.check_name(printed_name, f"{field}.printed_name")
    return {
        "user_id": require_text("user id", user_id),
        "printed_name": require_text("printed name", printed_name),
    }
