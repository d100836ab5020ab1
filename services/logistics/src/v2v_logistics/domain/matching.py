"""Scan matching (invariant I2): does a scanned label name a unit of this shipment's manifest?

A label is read in any form an ISBT 128 label carries (`v2v_platform.ids.din_from_scan`: the
DIN's Code 128 ``=`` + DIN + flags, the DataMatrix's compound message, the eye-readable form
with its check character, or DIN + flags typed). A check character, or check-value flags
(60-96), that do not match the DIN's data are refused (`check-character-mismatch`); flags
that differ from the manifest unit's are refused (`flags-mismatch`): never silently accepted.

Every refusal has a machine-readable reason code and a sentence for people. The codes are
part of the courier API contract (`reason_code` of the problem document).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from v2v_logistics.domain.values import KnownUnit
from v2v_platform.errors import Refused
from v2v_platform.ids import Din, InvalidIdentifier, din_from_scan
from v2v_platform.ids.din import CHECK_FLAGS_BASE, DIN_DATA_LENGTH, DIN_LENGTH

UNKNOWN_UNIT = "unknown-unit"
OTHER_COI = "other-coi"
EXTRA_UNIT = "extra-unit"
MISSING_UNIT = "missing-unit"
DUPLICATE_SCAN = "duplicate-scan"
WRONG_CUSTODIAN = "wrong-custodian"
WRONG_STATE = "wrong-state"
WRONG_DESTINATION = "wrong-destination"
MALFORMED_LABEL = "malformed-label"
CHECK_CHARACTER_MISMATCH = "check-character-mismatch"
FLAGS_MISMATCH = "flags-mismatch"
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
    din = scanned_din(label)
    if isinstance(din, Mismatch):
        return din
    on_manifest = {entry[:DIN_DATA_LENGTH]: entry for entry in manifest}
    if din.data in on_manifest:
        entry = on_manifest[din.data]
        flags = entry[DIN_DATA_LENGTH:DIN_LENGTH]
        if din.flags != flags and not carries_check_value(din):
            return Mismatch(
                FLAGS_MISMATCH,
                f"the label {label!r} has flags {din.flags!r} but unit {entry} on the manifest"
                f" has flags {flags!r}: STOP, this is not that unit's label",
            )
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


def scanned_din(label: str) -> Din | Mismatch:
    """The DIN a scanned label names, or why it names none."""
    try:
        return din_from_scan(label)
    except InvalidIdentifier as error:
        if error.problem == "check character":
            return Mismatch(
                CHECK_CHARACTER_MISMATCH,
                f"the label {label!r} does not check: {error}. STOP, do not take this unit",
            )
        return Mismatch(MALFORMED_LABEL, f"the label {label!r} is not a unit DIN: {error}")


def carries_check_value(din: Din) -> bool:
    """Flags 60-96 carry the DIN's check value (checked when parsed) instead of flag data."""
    return CHECK_FLAGS_BASE <= int(din.flags) <= CHECK_FLAGS_BASE + 36


def missing_units(manifest: Sequence[str], scanned: Collection[str]) -> Mismatch | None:
    missing = tuple(din for din in manifest if din not in scanned)
    if not missing:
        return None
    return Mismatch(
        MISSING_UNIT, f"not every unit was scanned; missing: {', '.join(missing)}", missing
    )
