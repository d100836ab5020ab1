"""Field rules shared by COIs and DINs (ISBT 128 facility number, year, sequence)."""

from __future__ import annotations

import string

from v2v_platform.ids.errors import IdentifierKind, InvalidIdentifier, Problem

ALPHANUMERIC = frozenset(string.ascii_uppercase + string.digits)
# ISBT 128 FIN: first character A-N, P-Z or 1-9 (no letter O, no zero), then 4 digits.
FIN_FIRST_CHARACTERS = frozenset(string.ascii_uppercase.replace("O", "") + "123456789")
FIN_LENGTH = 5
YEAR_LENGTH = 2
SEQUENCE_LENGTH = 6


def fail(kind: IdentifierKind, value: str, problem: Problem, detail: str) -> InvalidIdentifier:
    """An ``InvalidIdentifier`` whose message reads ``<kind> '<value>' <detail>``."""
    return InvalidIdentifier(kind, value, problem, f"{kind} {value!r} {detail}")


def check_characters(
    kind: IdentifierKind, value: str, allowed: frozenset[str], allowed_text: str, start: int = 0
) -> None:
    """Every character of ``value[start:]`` must be in ``allowed`` (positions count from 1)."""
    for index in range(start, len(value)):
        character = value[index]
        if character not in allowed:
            raise fail(
                kind,
                value,
                "character set",
                f"is invalid: character {character!r} at position {index + 1} is not allowed "
                f"(expected {allowed_text})",
            )


def fin_problem(fin: str) -> str | None:
    """Why ``fin`` is not an ISBT 128 facility identification number, or None if it is."""
    if len(fin) != FIN_LENGTH:
        return f"has length {len(fin)}; expected {FIN_LENGTH} characters"
    if fin[0] not in FIN_FIRST_CHARACTERS:
        return f"starts with {fin[0]!r}; the first character must be A-N, P-Z or 1-9"
    if not fin[1:].isascii() or not fin[1:].isdigit():
        return f"has {fin[1:]!r} after its first character; expected 4 digits"
    return None


def check_fin(kind: IdentifierKind, value: str, fin: str) -> None:
    problem = fin_problem(fin)
    if problem is not None:
        raise fail(
            kind, value, "facility", f"has facility identification number {fin!r} that {problem}"
        )


def check_digits(
    kind: IdentifierKind, value: str, problem: Problem, field: str, text: str, length: int
) -> None:
    if len(text) != length or not text.isascii() or not text.isdigit():
        raise fail(kind, value, problem, f"has {field} {text!r}; expected {length} digits")


def validate_fin_argument(kind: IdentifierKind, fin: str) -> str:
    """Check a FIN given to an issuer (not parsed from a full identifier)."""
    problem = fin_problem(fin)
    if problem is not None:
        raise InvalidIdentifier(
            kind, fin, "facility", f"{kind} facility identification number {fin!r} {problem}"
        )
    return fin


def format_year(kind: IdentifierKind, year: int) -> str:
    """The 2-digit year field for ``year`` given as its last two digits (0-99)."""
    if isinstance(year, bool) or not 0 <= year <= 99:
        raise InvalidIdentifier(
            kind,
            str(year),
            "year",
            f"{kind} year {year!r} is out of range; expected 0-99 "
            "(the last two digits of the year, e.g. 25 for 2025)",
        )
    return f"{year:02d}"


def format_decimal_sequence(kind: IdentifierKind, sequence_number: int) -> str:
    """``sequence_number`` (1 to 999999) as 6 zero-padded decimal digits."""
    highest = 10**SEQUENCE_LENGTH - 1
    if isinstance(sequence_number, bool) or not 1 <= sequence_number <= highest:
        raise InvalidIdentifier(
            kind,
            str(sequence_number),
            "sequence",
            f"{kind} sequence number {sequence_number!r} is out of range; expected 1 to {highest} "
            f"({SEQUENCE_LENGTH} zero-padded decimal digits)",
        )
    return f"{sequence_number:0{SEQUENCE_LENGTH}d}"
