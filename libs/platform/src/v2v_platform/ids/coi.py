"""Chain of Identity (COI) identifiers, ISBT 128 Data Structure 040 layout.

``CH`` + FIN (5: first character A-N, P-Z or 1-9, then 4 digits) + year (2 digits)
+ sequence (6 characters A-Z, 0-9) = 15 characters, e.g. ``CHA123425000017``.

Parsing accepts any sequence in [A-Z0-9] (a COI issued elsewhere may use letters).
Issuing here writes the sequence number as 6 zero-padded decimal digits, numbers
1 to 999999 per FIN and year (``17`` -> ``000017``): deterministic, human-readable,
and distinct numbers always give distinct COIs.
"""

from __future__ import annotations

from dataclasses import dataclass

from v2v_platform.ids._fields import (
    ALPHANUMERIC,
    FIN_LENGTH,
    SEQUENCE_LENGTH,
    YEAR_LENGTH,
    check_characters,
    check_digits,
    check_fin,
    fail,
    format_decimal_sequence,
    format_year,
    validate_fin_argument,
)

COI_PREFIX = "CH"
COI_LENGTH = len(COI_PREFIX) + FIN_LENGTH + YEAR_LENGTH + SEQUENCE_LENGTH


@dataclass(frozen=True, order=True)
class Coi:
    """One patient's therapy chain. ``str(coi)`` is the 15-character identifier."""

    fin: str
    year: str
    sequence: str

    def __post_init__(self) -> None:
        Coi.parse(f"{COI_PREFIX}{self.fin}{self.year}{self.sequence}")

    @classmethod
    def parse(cls, text: str) -> Coi:
        """Validate ``text`` (surrounding whitespace is ignored, nothing else is changed)."""
        value = text.strip()
        if len(value) != COI_LENGTH:
            raise fail(
                "COI",
                value,
                "length",
                f"has length {len(value)}; expected {COI_LENGTH} characters "
                f"('{COI_PREFIX}' + FIN {FIN_LENGTH} + year {YEAR_LENGTH} "
                f"+ sequence {SEQUENCE_LENGTH})",
            )
        check_characters("COI", value, ALPHANUMERIC, "A-Z or 0-9")
        if not value.startswith(COI_PREFIX):
            raise fail(
                "COI", value, "prefix", f"starts with {value[:2]!r}; expected {COI_PREFIX!r}"
            )
        fin_end = len(COI_PREFIX) + FIN_LENGTH
        year_end = fin_end + YEAR_LENGTH
        check_fin("COI", value, value[len(COI_PREFIX) : fin_end])
        check_digits("COI", value, "year", "year", value[fin_end:year_end], YEAR_LENGTH)
        return cls._unchecked(
            value[len(COI_PREFIX) : fin_end], value[fin_end:year_end], value[year_end:]
        )

    @classmethod
    def _unchecked(cls, fin: str, year: str, sequence: str) -> Coi:
        coi = object.__new__(cls)
        object.__setattr__(coi, "fin", fin)
        object.__setattr__(coi, "year", year)
        object.__setattr__(coi, "sequence", sequence)
        return coi

    @property
    def value(self) -> str:
        return f"{COI_PREFIX}{self.fin}{self.year}{self.sequence}"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CoiIssuer:
    """Issues COIs for one facility and year; see the module doc for the sequence format."""

    fin: str
    year: int

    def __post_init__(self) -> None:
        validate_fin_argument("COI", self.fin)
        format_year("COI", self.year)

    def issue(self, sequence_number: int) -> Coi:
        sequence = format_decimal_sequence("COI", sequence_number)
        return Coi._unchecked(self.fin, format_year("COI", self.year), sequence)


def issue_coi(fin: str, year: int, sequence_number: int) -> Coi:
    """The COI numbered ``sequence_number`` (1-999999) for ``fin`` in year ``year`` (0-99)."""
    return CoiIssuer(fin, year).issue(sequence_number)
