"""ISBT 128 data structures as a v2v label encodes them (ISBT 128 Standard Technical
Specification, ICCBBA ST-001; the structures' layout is public, ICCBBA's code tables are not).

- 001 DIN: ``=`` + DIN (13) + flags (2), e.g. ``=G12349865432100``; the check character is
  printed, never bar-coded;
- 003 product code: ``=<`` + product description code (a letter and 4 digits, from the
  site's licensed table) + type of donation (1) + divisions (2): ``=<S1234000``;
- 005 expiration date and time: ``&>cyyjjjhhmm``: century digit and year (``025`` for
  2025), day of the year (001-366), hour and minute, as the time is given (its own offset);
- 023 compound message, for the DataMatrix: ``=+`` + the number of structures (2 digits) +
  ``000`` (no ICCBBA-defined sequence) + the structures with their data identifiers.

Reading them back is `v2v_platform.ids.scanned` (what every service's scan accepts).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from v2v_platform.ids import Din
from v2v_platform.ids.scanned import (
    COMPOUND_IDENTIFIER,
    DIN_IDENTIFIER,
    EXPIRY_IDENTIFIER,
    PRODUCT_CODE_IDENTIFIER,
)

NO_DEFINED_SEQUENCE = "000"
UNSPECIFIED_DONATION_TYPE_AND_DIVISIONS = "000"
"""Appended to a 5-character product description code: type of donation ``0`` (not
specified) and divisions ``00`` (not divided). A site that needs others gives all 8."""
PRODUCT_DESCRIPTION_CODE = re.compile(r"[A-Z][0-9]{4}")
PRODUCT_CODE = re.compile(r"[A-Z][0-9]{4}[0-9A-Za-z][0-9A-Z]{2}")
MAX_STRUCTURES = 99


class InvalidLabelData(ValueError):
    """A value that no ISBT 128 data structure of a label can carry; the message says why."""


def product_code_data(code: str) -> str:
    """The 8 characters of data structure 003 for ``code`` (a 5-character product description
    code, or all 8 characters)."""
    if PRODUCT_DESCRIPTION_CODE.fullmatch(code):
        return code + UNSPECIFIED_DONATION_TYPE_AND_DIVISIONS
    if PRODUCT_CODE.fullmatch(code):
        return code
    raise InvalidLabelData(
        f"product code {code!r} is not an ISBT 128 product code: expected a product description"
        " code (a letter and 4 digits, e.g. S1234) optionally followed by the type of donation"
        " (1 character) and the divisions (2 characters)"
    )


def expiry_data(at: datetime) -> str:
    """``cyyjjjhhmm`` for ``at`` (timezone-aware, years 2000-2999), in its own offset."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidLabelData(f"expiry {at.isoformat()} has no UTC offset")
    if not 2000 <= at.year <= 2999:
        raise InvalidLabelData(f"expiry {at.isoformat()} is not in the years 2000-2999")
    return f"{at.year - 2000:03d}{at.timetuple().tm_yday:03d}{at:%H%M}"


def din_structure(din: Din) -> str:
    return f"{DIN_IDENTIFIER}{din}"


def product_code_structure(code: str) -> str:
    return f"{PRODUCT_CODE_IDENTIFIER}{product_code_data(code)}"


def expiry_structure(at: datetime) -> str:
    return f"{EXPIRY_IDENTIFIER}{expiry_data(at)}"


def compound_message(structures: Sequence[str]) -> str:
    """Data structure 023 holding ``structures`` (each with its data identifier), in order."""
    if not 1 <= len(structures) <= MAX_STRUCTURES:
        raise InvalidLabelData(f"a compound message holds 1-99 structures, not {len(structures)}")
    count = f"{len(structures):02d}"
    return f"{COMPOUND_IDENTIFIER}{count}{NO_DEFINED_SEQUENCE}{''.join(structures)}"
