"""Bedside verification rules (I2, I4, I5): may this unit be infused into this patient now?

Checks run in a fixed order and the first that fails is the reason recorded:
coi-mismatch, rejected / not-released, unacknowledged-failure, window-expired,
already-infused, same-user. (Malformed labels, unknown and not-received units are found
before there is a unit to check: see the application.) The release, failure and window checks
run again when the infusion is administered, in case they changed after verification.

Each scan and the infusion's witness are made by proven persons (`BEDSIDE_CHECK`,
`WITNESS_CHECK`): re-authenticated against this site's signer store, their signatures bound to
`bedside_record` / `infusion_record`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from v2v_infusion.domain.product import ProductAtSite, UnitStatus
from v2v_infusion.domain.values import (
    ALREADY_INFUSED,
    COI_MISMATCH,
    NOT_RELEASED,
    NURSE,
    REJECTED,
    SAME_USER,
    UNACKNOWLEDGED_FAILURE,
    WINDOW_EXPIRED,
    Mismatch,
    ReleaseState,
    ReleaseStatus,
)
from v2v_platform.esign.persons import PersonCheck

BEDSIDE_CHECK = PersonCheck(
    meaning="verification",
    signing_role=NURSE,
    signature_field="signature",
    person_field="operator.user_id",
)
"""Each bedside scan: by a proven person (re-authenticated) who may sign as a nurse."""
WITNESS_CHECK = PersonCheck(
    meaning="witness",
    signing_role=NURSE,
    signature_field="witness_signature",
    person_field="witnessed_by.user_id",
)
"""The infusion's witness: a proven person (re-authenticated) who may sign as a nurse."""


def bedside_record(din: str, wristband_coi: str, scanned_at: datetime) -> dict[str, Any]:
    """What a bedside scanner signs: this unit label with this wristband at `scanned_at`, as
    scanned (canonical when they parse; BedsideScanRecorded / BedsideVerified carry them)."""
    return {
        "check": "bedside",
        "din": din,
        "wristband_coi": wristband_coi,
        "scanned_at": scanned_at,
    }


def infusion_record(
    unit: ProductAtSite,
    administered_at: datetime,
    dose_car_cells_per_kg: float,
    volume_ml: float,
    administered_by: str,
) -> dict[str, Any]:
    """What the witness signs: the infusion as InfusionAdministered records it."""
    return {
        "check": "infusion-witness",
        "coi": unit.coi,
        "din": unit.din,
        "administered_at": administered_at,
        "dose_car_cells_per_kg": dose_car_cells_per_kg,
        "volume_ml": volume_ml,
        "administered_by": administered_by,
    }


def check_release(unit: ProductAtSite, release: ReleaseState) -> Mismatch | None:
    if release.status is ReleaseStatus.REJECTED:
        return Mismatch(REJECTED, f"batch {unit.batch_id} of unit {unit.din} was rejected")
    if not release.status.releases:
        return Mismatch(
            NOT_RELEASED,
            f"batch {unit.batch_id} of unit {unit.din} has no provisional or final certification"
            " and no accepted OOS release",
        )
    return None


def check_failures(unit: ProductAtSite, unacknowledged: Sequence[str]) -> Mismatch | None:
    if not unacknowledged:
        return None
    return Mismatch(
        UNACKNOWLEDGED_FAILURE,
        f"batch {unit.batch_id} has post-release failure(s) {', '.join(unacknowledged)} not yet"
        " acknowledged by a physician at this site",
    )


def infuse_by(
    unit: ProductAtSite, release: ReleaseState, fresh_window: timedelta
) -> datetime | None:
    """The end of the unit's window: fresh from its release, cryo from its thaw start."""
    if unit.condition.is_fresh:
        return release.released_at + fresh_window if release.released_at else None
    return unit.thaw_infuse_by


def check_window(
    unit: ProductAtSite, release: ReleaseState, moment: datetime, fresh_window: timedelta
) -> Mismatch | None:
    if not unit.condition.is_fresh and unit.thaw_started_at is None:
        return Mismatch(
            WINDOW_EXPIRED,
            f"cryopreserved unit {unit.din} is not thawing: its post-thaw window has not started",
        )
    deadline = infuse_by(unit, release, fresh_window)
    if deadline is None or moment > deadline:
        basis = "release" if unit.condition.is_fresh else "thaw start"
        shown = deadline.isoformat() if deadline else "unknown"
        return Mismatch(
            WINDOW_EXPIRED,
            f"unit {unit.din} had to be infused by {shown} (window from its {basis})",
        )
    return None


def check_infusable(
    unit: ProductAtSite,
    release: ReleaseState,
    unacknowledged: Sequence[str],
    moment: datetime,
    fresh_window: timedelta,
) -> Mismatch | None:
    """Released, no unacknowledged post-release failure, within its window at `moment`."""
    return (
        check_release(unit, release)
        or check_failures(unit, unacknowledged)
        or check_window(unit, release, moment, fresh_window)
    )


def check_scan(
    unit: ProductAtSite,
    wristband_coi: str,
    user_id: str,
    release: ReleaseState,
    unacknowledged: Sequence[str],
    moment: datetime,
    fresh_window: timedelta,
) -> Mismatch | None:
    """None when this scan of `unit` against the patient's wristband may go ahead."""
    if wristband_coi != unit.coi:
        return Mismatch(
            COI_MISMATCH,
            f"the wristband COI {wristband_coi} is not the COI {unit.coi} of unit {unit.din}:"
            " STOP, this product is not for this patient",
        )
    refused = check_infusable(unit, release, unacknowledged, moment, fresh_window)
    if refused is not None:
        return refused
    if unit.status is UnitStatus.INFUSED:
        return Mismatch(ALREADY_INFUSED, f"unit {unit.din} was already infused")
    first = unit.first_user
    if unit.status is UnitStatus.FIRST_SCAN_RECORDED and first and first["user_id"] == user_id:
        return Mismatch(
            SAME_USER,
            f"{user_id} made the first bedside scan of unit {unit.din}; a different user must"
            " make the second",
        )
    return None
