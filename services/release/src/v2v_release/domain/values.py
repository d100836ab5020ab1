"""Value objects of the release domain."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from v2v_platform import limits
from v2v_platform.aggregate_cache import immutable
from v2v_platform.conditions import Condition
from v2v_platform.errors import InvalidInput
from v2v_platform.limits import MAX_ID_CHARS, echo


class ReleaseStatus(StrEnum):
    OPEN = "open"
    PROVISIONALLY_CERTIFIED = "provisionally-certified"
    FINALLY_CERTIFIED = "finally-certified"
    REJECTED = "rejected"
    OOS_JUSTIFIED = "oos-justified"
    OOS_RELEASED = "oos-released"


class DecisionKind(StrEnum):
    PROVISIONAL = "provisional"
    FINAL = "final"
    REJECTED = "rejected"
    OOS_JUSTIFIED = "oos-justified"
    OOS_ACCEPTED = "oos-accepted"


def require_text(name: str, value: str) -> str:
    if not value.strip():
        raise InvalidInput(f"{name} is required")
    return value.strip()


def parse_batch_id(text: str) -> str:
    """Manufacturing's batch id (a UUID), in its canonical spelling."""
    try:
        return str(UUID(text.strip()))
    except ValueError:
        raise InvalidInput(f"batch id {echo(text, MAX_ID_CHARS)!r} is not a UUID") from None


@dataclass(frozen=True)
class BatchFact:
    """What manufacturing's events said about a batch (release's own projection of them)."""

    batch_id: str
    coi: str
    manufacturing_site_id: str
    started_at: datetime
    product_dins: tuple[str, ...] = ()
    hold_condition: Condition | None = None
    failure_reason: str | None = None
    harvested_at: datetime | None = None
    """When its product units were created (None while not harvested, or not known here)."""


@immutable  # shared, not rebuilt, by the aggregate cache's copies
@dataclass(frozen=True)
class Analyst:
    user_id: str
    printed_name: str

    def __post_init__(self) -> None:
        require_text("the analyst's user id", self.user_id)
        require_text("the analyst's printed name", self.printed_name)
        limits.check_id(self.user_id, "analyst.user_id")
        limits.check_name(self.printed_name, "analyst.printed_name")

    def as_dict(self) -> dict[str, str]:
        return {"user_id": self.user_id, "printed_name": self.printed_name}


@dataclass(frozen=True)
class QcReport:
    """A QC result as the lab reports it."""

    test: str
    method: str
    value: str
    unit: str
    result_at: datetime
    analyst: Analyst

    def __post_init__(self) -> None:
        require_text("the test", self.test)
        require_text("the value", self.value)
        limits.check_id(self.test, "test")
        limits.check_name(self.method, "method")
        limits.check_id(self.value, "value")
        limits.check_id(self.unit, "unit")
        if self.result_at.tzinfo is None:
            raise InvalidInput("the result time must carry a time zone (UTC)")


@dataclass(frozen=True)
class Correction:
    """Which earlier result a new result corrects, and why."""

    corrects_result_id: str
    reason: str

    def __post_init__(self) -> None:
        require_text("the id of the corrected result", self.corrects_result_id)
        require_text("a correction reason", self.reason)
        limits.check_id(self.corrects_result_id, "corrects_result_id")
        limits.check_free_text(self.reason, "correction_reason")


@immutable  # shared, not rebuilt, by the aggregate cache's copies
@dataclass(frozen=True)
class RecordedResult:
    result_id: str
    test: str
    method: str
    value: str
    unit: str
    result_at: datetime
    analyst: Analyst
    passed: bool
    criterion: str
    corrected_by_result_id: str = ""


@dataclass(frozen=True)
class Decision:
    """A signed decision, always with its signature's manifestation."""

    decision: DecisionKind
    decided_at: datetime
    reason: str
    signature: dict[str, str]
