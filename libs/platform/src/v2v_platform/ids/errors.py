"""The one error raised for a malformed or out-of-range identifier."""

from __future__ import annotations

from typing import Literal

IdentifierKind = Literal["COI", "DIN"]
Problem = Literal[
    "length",
    "character set",
    "prefix",
    "facility",
    "year",
    "sequence",
    "flags",
    "check character",
    "data structure",
]


class InvalidIdentifier(ValueError):
    """A COI or DIN that is malformed, or cannot be issued as asked.

    ``kind`` is ``"COI"`` or ``"DIN"``, ``value`` the offending text (after stripping
    surrounding whitespace) or the out-of-range input, ``problem`` names the rule that
    failed (see ``Problem``); the message says exactly what is wrong.
    """

    def __init__(self, kind: IdentifierKind, value: str, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.kind: IdentifierKind = kind
        self.value = value
        self.problem: Problem = problem
