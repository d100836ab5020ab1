"""Label scans (invariant I2): what a scan must match, and the precise reason when it does not;
who may make one (a proven person: `LABEL_CHECK`) and what their signature is bound to."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from v2v_platform.esign.persons import PersonCheck
from v2v_platform.ids import Coi, Din, InvalidIdentifier, din_from_scan

COLLECTION_SIGNER = "collection"
"""The signer role (in intake's signer store) of the staff who verify labels."""
LABEL_CHECK = PersonCheck(
    meaning="verification",
    signing_role=COLLECTION_SIGNER,
    signature_field="signature",
    person_field="operator.user_id",
)
"""Each scan of a two-person label verification: by a proven person (re-authenticated)."""


class MismatchReason(StrEnum):
    MALFORMED = "malformed"
    DIN_MISMATCH = "din-mismatch"
    COI_MISMATCH = "coi-mismatch"
    SAME_USER = "same-user"


@dataclass(frozen=True)
class LabelMismatch:
    """Why a scan was refused; recorded as a LabelMismatchRecorded event."""

    reason_code: MismatchReason
    explanation: str


def check_label(
    expected_din: Din, coi: str, scanned_din: str, scanned_coi: str
) -> LabelMismatch | None:
    """None when the scanned DIN and COI bar codes are those of the expected unit and its COI.
    The DIN is read in any form its label carries (`din_from_scan`: the Code 128 `=` + DIN +
    flags, the DataMatrix compound message, the eye-readable form)."""
    try:
        din = din_from_scan(scanned_din)
    except InvalidIdentifier as error:
        return LabelMismatch(MismatchReason.MALFORMED, f"scanned DIN is malformed: {error}")
    if din.data != expected_din.data:
        return LabelMismatch(
            MismatchReason.DIN_MISMATCH,
            f"scanned DIN {din.data} is not the expected unit {expected_din.data}",
        )
    try:
        scanned = Coi.parse(scanned_coi)
    except InvalidIdentifier as error:
        return LabelMismatch(MismatchReason.MALFORMED, f"scanned COI is malformed: {error}")
    if scanned.value != coi:
        return LabelMismatch(
            MismatchReason.COI_MISMATCH,
            f"scanned COI {scanned.value} is not the unit's COI {coi}",
        )
    return None


def same_user_mismatch(user_id: str, din: Din) -> LabelMismatch:
    return LabelMismatch(
        MismatchReason.SAME_USER,
        f"user {user_id} already made the first scan of unit {din.data}; a second, different"
        " user must verify it",
    )


def verification_record(coi: str, din: str) -> dict[str, str]:
    """What the scanning person signs: "the label of unit `din` is checked against `coi`"
    (the `coi` and `din` of LabelScanned, LabelVerified and LabelMismatchRecorded's
    `expected_din` name it)."""
    return {"check": "label-verification", "coi": coi, "din": din}
