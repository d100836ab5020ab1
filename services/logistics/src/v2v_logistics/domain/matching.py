"""Scan matching (invariant I2): does a scanned label name a unit of this shipment's manifest?

Every refusal has a machine-readable reason code and a sentence for people. The codes are
part of the courier API contract (`reason_code` of the problem document).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from v2v_logistics.domain.values import KnownUnit
from v2v_platform.errors import Refused
from v2v_platform.ids import Din, InvalidIdentifier

UNKNOWN_UNIT = "unknown-unit"
OTHER_COI = "other-coi"
EXTRA_UNIT = "extra-unit"
MISSING_UNIT = "missing-unit"
DUPLICATE_SCAN = "duplicate-scan"
WRONG_CUSTODIAN = "wrong-custodian"
WRONG_STATE = "wrong-state"
WRONG_DESTINATION = "wrong-destination"
MALFORMED_LABEL = "malformed-label"
WINDOW_BREACHED = "window-breached"
NOT_OFFERED = "not-offered"
NOT_A_PARTY = "not-a-party"

UnitLookup = Callable[[str], KnownUnit | None]


@dataclass(frozen=True)
class Mismatch:
    """Why a scan, handoff or receipt was refused."""

    reason_code: str
    explanation: str
    missing_dins: tuple[str, ...] = ()


class ScanRefused(Refused):
    """A scan, handoff or receipt was refused by a custody rule; it was recorded (I2)."""

    def __init__(self, mismatch: Mismatch, coi: str = "") -> None:
        super().__init__(mismatch.explanation)
        self.mismatch = mismatch
        self.coi = coi
        """The shipment's COI, for the access log."""

    @property
    def reason_code(self) -> str:
        return self.mismatch.reason_code


def match_label(
    label: str,
    coi: str,
    manifest: Sequence[str],
    already_scanned: Collection[str],
    known: UnitLookup,
) -> Mismatch | str:
    """The manifest DIN the label names (not yet scanned), or why it does not match."""
    try:
        din = Din.parse(label.strip())
    except InvalidIdentifier as error:
        return Mismatch(MALFORMED_LABEL, f"the label {label!r} is not a unit DIN: {error}")
    on_manifest = {entry[:13]: entry for entry in manifest}
    if din.data in on_manifest:
        entry = on_manifest[din.data]
        if entry in already_scanned:
            return Mismatch(DUPLICATE_SCAN, f"unit {entry} was already scanned for this handoff")
        return entry
    unit = known(din.data)
    if unit is None:
        return Mismatch(UNKNOWN_UNIT, f"no unit with DIN {din} is known: STOP, do not take it")
    if unit.coi != coi:
        return Mismatch(
            OTHER_COI,
            f"unit {din} belongs to another patient (COI {unit.coi}), not this shipment's"
            f" COI {coi}: STOP",
        )
    return Mismatch(EXTRA_UNIT, f"unit {din} of this COI is not on the shipment's manifest")


def missing_units(manifest: Sequence[str], scanned: Collection[str]) -> Mismatch | None:
    missing = tuple(din for din in manifest if din not in scanned)
    if not missing:
        return None
    return Mismatch(
        MISSING_UNIT, f"not every unit was scanned; missing: {', '.join(missing)}", missing
    )
