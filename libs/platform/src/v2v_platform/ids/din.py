"""ISBT 128 Donation Identification Numbers (DINs) for physical units.

Layout: FIN (5) + year (2 digits) + sequence (6 digits) = the 13-character DIN, then
2 flag characters (2 digits). The ISO 7064 MOD 37-2 check character is computed over
the 13-character DIN only (never the flags) and is printed, not bar-coded.

Text forms:
- ``str(din)``: DIN + flags, 15 characters, as carried in the bar code after ``=``;
- ``din.with_check_character()``: 16 characters, DIN + flags + check character;
- ``din.eye_readable()``: ``G1234 98 654321 00 H`` = FIN, year, sequence, flags,
  check character, separated by single spaces.

Flags ``60``-``96`` are the ISBT 128 "check character as flags" form (60 + check value);
when present they must agree with the data like a printed check character does.
"""

from __future__ import annotations

import string
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

MOD37_2_ALPHABET = string.digits + string.ascii_uppercase + "*"
_VALUES = {character: value for value, character in enumerate(MOD37_2_ALPHABET[:36])}

DIN_DATA_LENGTH = FIN_LENGTH + YEAR_LENGTH + SEQUENCE_LENGTH
FLAGS_LENGTH = 2
DIN_LENGTH = DIN_DATA_LENGTH + FLAGS_LENGTH
DIN_WITH_CHECK_LENGTH = DIN_LENGTH + 1
CHECK_FLAGS_BASE = 60
DEFAULT_FLAGS = "00"


def mod37_2_checksum(data: str) -> int:
    """ISO 7064 pure MOD 37-2 check value (0-36) of ``data`` (characters 0-9, A-Z)."""
    p = 0
    for position, character in enumerate(data, start=1):
        value = _VALUES.get(character)
        if value is None:
            raise ValueError(
                f"MOD 37-2 input {data!r}: character {character!r} at position {position} "
                "is not allowed (expected A-Z or 0-9)"
            )
        p = ((p + value) * 2) % 37
    return (38 - p) % 37


def mod37_2_check_character(data: str) -> str:
    """The ISO 7064 MOD 37-2 check character (0-9, A-Z or ``*``) of ``data``."""
    return MOD37_2_ALPHABET[mod37_2_checksum(data)]


@dataclass(frozen=True, order=True)
class Din:
    """One unit's DIN with its flags; ``str(din)`` is the 15-character DIN + flags."""

    fin: str
    year: str
    sequence: str
    flags: str = DEFAULT_FLAGS

    def __post_init__(self) -> None:
        Din.parse(f"{self.fin}{self.year}{self.sequence}{self.flags}")

    @classmethod
    def parse(cls, text: str) -> Din:
        """Validate 15 characters (DIN + flags) or 16 (+ check character, which must match).

        Surrounding whitespace is ignored; nothing else is changed (no case folding).
        """
        value = text.strip()
        if len(value) not in (DIN_LENGTH, DIN_WITH_CHECK_LENGTH):
            raise fail(
                "DIN",
                value,
                "length",
                f"has length {len(value)}; expected {DIN_LENGTH} characters (FIN {FIN_LENGTH} "
                f"+ year {YEAR_LENGTH} + sequence {SEQUENCE_LENGTH} + flags {FLAGS_LENGTH}), "
                f"or {DIN_WITH_CHECK_LENGTH} with the check character",
            )
        check_characters("DIN", value[:DIN_LENGTH], ALPHANUMERIC, "A-Z or 0-9")
        if len(value) == DIN_WITH_CHECK_LENGTH:
            check_characters(
                "DIN", value, frozenset(MOD37_2_ALPHABET), "0-9, A-Z or '*'", start=DIN_LENGTH
            )
        year_start = FIN_LENGTH
        sequence_start = year_start + YEAR_LENGTH
        check_fin("DIN", value, value[:FIN_LENGTH])
        check_digits("DIN", value, "year", "year", value[year_start:sequence_start], YEAR_LENGTH)
        sequence = value[sequence_start:DIN_DATA_LENGTH]
        check_digits("DIN", value, "sequence", "sequence", sequence, SEQUENCE_LENGTH)
        flags = value[DIN_DATA_LENGTH:DIN_LENGTH]
        check_digits("DIN", value, "flags", "flags", flags, FLAGS_LENGTH)
        din = cls._unchecked(value[:FIN_LENGTH], value[year_start:sequence_start], sequence, flags)
        din._check_flags(value)
        if len(value) == DIN_WITH_CHECK_LENGTH and value[-1] != din.check_character:
            raise fail(
                "DIN",
                value,
                "check character",
                f"is invalid: check character is {value[-1]!r} but the data {din.data!r} "
                f"gives {din.check_character!r}",
            )
        return din

    @classmethod
    def _unchecked(cls, fin: str, year: str, sequence: str, flags: str) -> Din:
        din = object.__new__(cls)
        object.__setattr__(din, "fin", fin)
        object.__setattr__(din, "year", year)
        object.__setattr__(din, "sequence", sequence)
        object.__setattr__(din, "flags", flags)
        return din

    def _check_flags(self, value: str) -> None:
        encoded = int(self.flags) - CHECK_FLAGS_BASE
        checksum = mod37_2_checksum(self.data)
        if 0 <= encoded <= 36 and encoded != checksum:
            raise fail(
                "DIN",
                value,
                "check character",
                f"is invalid: flags {self.flags!r} encode check value {encoded} but the data "
                f"{self.data!r} gives {checksum} (flags {CHECK_FLAGS_BASE + checksum})",
            )

    @property
    def data(self) -> str:
        """The 13-character DIN (FIN + year + sequence) the check character covers."""
        return f"{self.fin}{self.year}{self.sequence}"

    @property
    def check_character(self) -> str:
        return mod37_2_check_character(self.data)

    def with_check_character(self) -> str:
        return f"{self.data}{self.flags}{self.check_character}"

    def eye_readable(self) -> str:
        """``FIN YY SEQUENCE FLAGS CHECK``, e.g. ``G1234 98 654321 00 H``."""
        return f"{self.fin} {self.year} {self.sequence} {self.flags} {self.check_character}"

    def __str__(self) -> str:
        return f"{self.data}{self.flags}"


@dataclass(frozen=True)
class DinIssuer:
    """Issues DINs for one facility and year: sequence numbers 1-999999, zero-padded."""

    fin: str
    year: int

    def __post_init__(self) -> None:
        validate_fin_argument("DIN", self.fin)
        format_year("DIN", self.year)

    def issue(self, sequence_number: int, flags: str = DEFAULT_FLAGS) -> Din:
        sequence = format_decimal_sequence("DIN", sequence_number)
        return Din(self.fin, format_year("DIN", self.year), sequence, flags)


def issue_din(fin: str, year: int, sequence_number: int, flags: str = DEFAULT_FLAGS) -> Din:
    """The DIN numbered ``sequence_number`` (1-999999) for ``fin`` in year ``year`` (0-99)."""
    return DinIssuer(fin, year).issue(sequence_number, flags)
