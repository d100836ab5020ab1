"""What a scanner reads off an ISBT 128 label names its DIN, for every service
(`din_from_scan`, behind `parse_din` and `din_or_problem`): the Code 128 DIN data structure,
the DataMatrix compound message, the eye-readable form; a check character or check-value flags
that do not match are refused, never folded into a valid DIN."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from v2v_platform.errors import InvalidInput
from v2v_platform.ids import InvalidIdentifier, din_from_scan, issue_din
from v2v_platform.labels import Label, barcode_texts
from v2v_platform.service_application import din_or_problem, parse_din

DIN = issue_din("G1234", 25, 17)  # check character 5; check-value flags 60 + 5 = 65
LABEL = Label(DIN, "CHG123425000017", expires_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    "scanned",
    [
        barcode_texts(LABEL)["din"],  # =G12342500001700
        barcode_texts(LABEL)["datamatrix"],  # =+02000=G12342500001700&>0260601200
        "=+03000=<S1234000=G12342500001700&>0260601200",  # the DIN need not come first
        "G1234 25 000017 00 5",  # eye-readable, as printed
        "G123425000017005",  # DIN + flags + check character
        " G12342500001700\n",  # DIN + flags, as stored, with a scanner's newline
        "=G12342500001765",  # flags 65 carry the check value (5)
    ],
)
def test_every_form_a_label_carries_names_its_din(scanned: str) -> None:
    assert din_from_scan(scanned).data == DIN.data
    assert parse_din(scanned).data == DIN.data
    assert din_or_problem(scanned) == (din_from_scan(scanned), "")


def test_the_flags_read_are_kept() -> None:
    assert str(din_from_scan("=G12342500001765")) == "G12342500001765"
    assert din_from_scan(barcode_texts(LABEL)["datamatrix"]) == DIN


@pytest.mark.parametrize(
    ("scanned", "problem", "named"),
    [
        ("G1234 25 000017 00 6", "check character", "check character is '6'"),
        ("G123425000017006", "check character", "gives '5'"),
        ("=G12342500001766", "check character", "flags '66' encode check value 6"),
        ("=+01000=G12342500001766", "check character", "flags '66'"),
        ("=+02000=G12342500001700", "data structure", "announces 2 data structures but holds 1"),
        ("=+01000=G123425000017", "data structure", "ends inside data structure '='"),
        ("=+02000=<S1234000&>0260601200", "data structure", "holds 0 DIN data structures"),
        ("=+02000=G12342500001700=G12342500001800", "data structure", "holds 2 DIN"),
        ("=+01000&?ABCDEF=G12342500001700", "data structure", "data identifier '&?'"),
        ("=+1X000=G12342500001700", "data structure", "expected 5 digits"),
        ("=G123425000017", "length", "DIN data structure of 13 characters"),
        ("=G1234250000170", "length", "of 14 characters"),
        ("G1234  25 000017 00 5", "length", "has length 21"),
    ],
)
def test_a_label_that_does_not_check_is_refused_naming_why(
    scanned: str, problem: str, named: str
) -> None:
    with pytest.raises(InvalidIdentifier) as refused:
        din_from_scan(scanned)
    assert refused.value.problem == problem and named in str(refused.value)
    with pytest.raises(InvalidInput, match="DIN"):
        parse_din(scanned)
    din, why = din_or_problem(scanned)
    assert din is None and named in why
