"""A DIN as a scanner reads it from an ISBT 128 label, in every form a label carries.

- the DIN data structure (001) of the label's Code 128: ``=`` + DIN + flags, e.g.
  ``=G12349865432100`` (16 characters);
- a compound message (data structure 023) of the label's DataMatrix: ``=+`` + the number of
  data structures (2 digits) + the message identifier (3 digits, ``000`` when no
  ICCBBA-defined sequence) + the data structures one after the other, each with its data
  identifier, e.g. ``=+03000=G12349865432100=<S1234A00&>0252442359``; it must hold exactly one
  DIN data structure, as many structures as it announces, and only structures whose length
  is known here (`FIXED_LENGTHS`);
- the eye-readable form as printed, ``G1234 98 654321 00 H`` (groups separated by single
  spaces; the check character printed after the flags);
- and what `Din.parse` reads: 15 characters (DIN + flags) or 16 (+ the check character).

Nothing is folded or guessed: a check character that does not match the data, or flags 60-96
(the check value carried in the flags) that do not, are refused (`InvalidIdentifier` with
problem ``"check character"``), like any other malformed DIN.
"""

from __future__ import annotations

import re

from v2v_platform.ids._fields import fail
from v2v_platform.ids.din import DIN_LENGTH, Din
from v2v_platform.ids.errors import InvalidIdentifier

DIN_IDENTIFIER = "="
"""Data structure 001 (DIN): ``=`` then the DIN's first character (A-N, P-Z, 1-9)."""
PRODUCT_CODE_IDENTIFIER = "=<"
EXPIRY_IDENTIFIER = "&>"
COMPOUND_IDENTIFIER = "=+"
COMPOUND_HEADER_LENGTH = 5
"""``aa`` (how many data structures follow) + ``bbb`` (the compound message identifier)."""

FIXED_LENGTHS: dict[str, int] = {
    "=%": 4,  # 002 blood groups
    PRODUCT_CODE_IDENTIFIER: 8,  # 003 product code: PDC (5) + donation type (1) + divisions (2)
    "=>": 6,  # 004 expiration date cyyjjj
    EXPIRY_IDENTIFIER: 10,  # 005 expiration date and time cyyjjjhhmm
    "=*": 6,  # 006 collection date
    "&*": 10,  # 007 collection date and time
    "=}": 6,  # 008 production date
    "&}": 10,  # 009 production date and time
}
"""Data identifier -> length of the data after it, for the structures a v2v label may carry
next to its DIN in a compound message."""

_EYE_READABLE = re.compile(r"([0-9A-Z]{5}) ([0-9]{2}) ([0-9]{6}) ([0-9]{2}) ([0-9A-Z*])")


def din_from_scan(text: str) -> Din:
    """The DIN a scanned (or typed) label names; InvalidIdentifier saying why it names none.

    Surrounding whitespace is ignored."""
    value = text.strip()
    if value.startswith(COMPOUND_IDENTIFIER):
        return _din_of_compound(value)
    if value.startswith(DIN_IDENTIFIER):
        return _din_of_structure(value, value)
    eye_readable = _EYE_READABLE.fullmatch(value)
    if eye_readable:
        return Din.parse("".join(eye_readable.groups()))
    return Din.parse(value)


def data_structures(compound: str) -> list[tuple[str, str]]:
    """The (data identifier, data) pairs of a compound message, checked against its header."""
    header = compound[len(COMPOUND_IDENTIFIER) : len(COMPOUND_IDENTIFIER) + COMPOUND_HEADER_LENGTH]
    if len(header) != COMPOUND_HEADER_LENGTH or not header.isascii() or not header.isdigit():
        raise _structure_error(compound, f"has header {header!r}; expected 5 digits after '=+'")
    announced = int(header[:2])
    position = len(COMPOUND_IDENTIFIER) + COMPOUND_HEADER_LENGTH
    structures: list[tuple[str, str]] = []
    while position < len(compound):
        identifier, length = _structure_at(compound, position)
        data = compound[position + len(identifier) : position + len(identifier) + length]
        if len(data) != length:
            raise _structure_error(
                compound, f"ends inside data structure {identifier!r} (expected {length} chars)"
            )
        structures.append((identifier, data))
        position += len(identifier) + length
    if len(structures) != announced:
        raise _structure_error(
            compound, f"announces {announced} data structures but holds {len(structures)}"
        )
    return structures


def _structure_at(compound: str, position: int) -> tuple[str, int]:
    identifier = compound[position : position + 2]
    if identifier in FIXED_LENGTHS:
        return identifier, FIXED_LENGTHS[identifier]
    if identifier[:1] == DIN_IDENTIFIER and identifier[1:].isalnum():
        return DIN_IDENTIFIER, DIN_LENGTH
    raise _structure_error(
        compound,
        f"has data identifier {identifier!r} at position {position + 1}, not one of a label's",
    )


def _din_of_compound(compound: str) -> Din:
    dins = [data for identifier, data in data_structures(compound) if identifier == DIN_IDENTIFIER]
    if len(dins) != 1:
        raise _structure_error(compound, f"holds {len(dins)} DIN data structures; expected 1")
    return _din_of_structure(DIN_IDENTIFIER + dins[0], compound)


def _din_of_structure(structure: str, scanned: str) -> Din:
    data = structure[len(DIN_IDENTIFIER) :]
    if len(data) != DIN_LENGTH:
        raise fail(
            "DIN",
            scanned,
            "length",
            f"has a DIN data structure of {len(data)} characters after '='; expected"
            f" {DIN_LENGTH} (DIN + flags)",
        )
    return Din.parse(data)


def _structure_error(value: str, detail: str) -> InvalidIdentifier:
    return fail("DIN", value, "data structure", f"is not an ISBT 128 compound message: it {detail}")
