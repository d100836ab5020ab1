"""ISBT 128 identifiers: COIs (therapy chains) and DINs (physical units)."""

from v2v_platform.ids.coi import COI_LENGTH, COI_PREFIX, Coi, CoiIssuer, issue_coi
from v2v_platform.ids.din import (
    DEFAULT_FLAGS,
    DIN_LENGTH,
    DIN_WITH_CHECK_LENGTH,
    MOD37_2_ALPHABET,
    Din,
    DinIssuer,
    issue_din,
    mod37_2_check_character,
    mod37_2_checksum,
)
from v2v_platform.ids.errors import IdentifierKind, InvalidIdentifier, Problem
from v2v_platform.ids.scanned import din_from_scan

__all__ = [
    "COI_LENGTH",
    "COI_PREFIX",
    "DEFAULT_FLAGS",
    "DIN_LENGTH",
    "DIN_WITH_CHECK_LENGTH",
    "MOD37_2_ALPHABET",
    "Coi",
    "CoiIssuer",
    "Din",
    "DinIssuer",
    "IdentifierKind",
    "InvalidIdentifier",
    "Problem",
    "din_from_scan",
    "issue_coi",
    "issue_din",
    "mod37_2_check_character",
    "mod37_2_checksum",
]
