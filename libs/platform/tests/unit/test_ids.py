"""COI and DIN identifiers: ISBT 128 layout, ISO 7064 MOD 37-2 check character."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2v_platform.ids import (
    Coi,
    CoiIssuer,
    Din,
    InvalidIdentifier,
    issue_coi,
    issue_din,
    mod37_2_check_character,
    mod37_2_checksum,
)

ALNUM = string.digits + string.ascii_uppercase
FIN_FIRST = "ABCDEFGHIJKLMNPQRSTUVWXYZ123456789"

fins = st.builds(
    lambda first, digits: first + digits,
    st.sampled_from(FIN_FIRST),
    st.text(alphabet=string.digits, min_size=4, max_size=4),
)
years = st.integers(min_value=0, max_value=99)
sequence_numbers = st.integers(min_value=1, max_value=999_999)
flags = st.text(alphabet=string.digits, min_size=2, max_size=2).filter(
    lambda f: not 60 <= int(f) <= 96
)


def problem_of(kind: str, text: str) -> InvalidIdentifier:
    parser = Coi.parse if kind == "COI" else Din.parse
    with pytest.raises(InvalidIdentifier) as caught:
        parser(text)
    assert caught.value.kind == kind
    return caught.value


# --- MOD 37-2 ------------------------------------------------------------------------


def test_isbt_test_vector() -> None:
    assert mod37_2_check_character("G123498654321") == "H"
    assert mod37_2_checksum("G123498654321") == 17


def test_check_character_can_be_star() -> None:
    # find data whose check value is 36 and confirm the table maps it to '*'
    data = next(f"A0000{n:08d}" for n in range(1000) if mod37_2_checksum(f"A0000{n:08d}") == 36)
    assert mod37_2_check_character(data) == "*"


def test_check_character_rejects_characters_outside_the_table() -> None:
    with pytest.raises(ValueError, match=r"character 'a' at position 2"):
        mod37_2_check_character("Ga")


# --- DIN -----------------------------------------------------------------------------


def test_din_parses_with_and_without_check_character() -> None:
    din = Din.parse("G12349865432100")
    assert (din.fin, din.year, din.sequence, din.flags) == ("G1234", "98", "654321", "00")
    assert din.data == "G123498654321"
    assert din.check_character == "H"
    assert str(din) == "G12349865432100"
    assert din.with_check_character() == "G12349865432100H"
    assert Din.parse("  G12349865432100H\n") == din


def test_din_eye_readable() -> None:
    assert Din.parse("G12349865432100").eye_readable() == "G1234 98 654321 00 H"


def test_issue_din() -> None:
    din = issue_din("G1234", 98, 654321)
    assert din == Din.parse("G12349865432100H")
    assert issue_din("A0001", 5, 7, flags="01").with_check_character().startswith("A00010500000701")


def test_din_length_message() -> None:
    error = problem_of("DIN", "G12349865432")
    assert error.problem == "length"
    assert error.value == "G12349865432"
    assert str(error) == (
        "DIN 'G12349865432' has length 12; expected 15 characters (FIN 5 + year 2 + "
        "sequence 6 + flags 2), or 16 with the check character"
    )


def test_din_without_flags_is_a_length_error() -> None:
    assert problem_of("DIN", "G123498654321").problem == "length"


def test_din_character_set_message() -> None:
    error = problem_of("DIN", "G1a349865432100")
    assert error.problem == "character set"
    assert "character 'a' at position 3 is not allowed" in str(error)


def test_din_lower_case_is_not_folded() -> None:
    assert problem_of("DIN", "g12349865432100").problem == "character set"


def test_din_inner_whitespace_is_rejected() -> None:
    error = problem_of("DIN", "G1234 986543210")
    assert error.problem == "character set"
    assert "position 6" in str(error)


@pytest.mark.parametrize("first", ["O", "0"])
def test_din_forbidden_first_fin_character(first: str) -> None:
    error = problem_of("DIN", f"{first}12349865432100")
    assert error.problem == "facility"
    assert f"starts with {first!r}" in str(error)
    assert "A-N, P-Z or 1-9" in str(error)


def test_din_fin_digits() -> None:
    error = problem_of("DIN", "G12A49865432100")
    assert error.problem == "facility"
    assert "'12A4'" in str(error)


def test_din_year_and_sequence_must_be_digits() -> None:
    assert problem_of("DIN", "G1234A865432100").problem == "year"
    error = problem_of("DIN", "G123498654A2100")
    assert error.problem == "sequence"
    assert "has sequence '654A21'; expected 6 digits" in str(error)


def test_din_flags_must_be_digits() -> None:
    error = problem_of("DIN", "G1234986543210A")
    assert error.problem == "flags"


def test_din_check_character_mismatch() -> None:
    error = problem_of("DIN", "G12349865432100X")
    assert error.problem == "check character"
    assert "check character is 'X' but the data 'G123498654321' gives 'H'" in str(error)


def test_din_check_character_position_allows_star_only_there() -> None:
    error = problem_of("DIN", "G12349865432100#")
    assert error.problem == "character set"
    assert "position 16" in str(error)
    assert problem_of("DIN", "G12349865432100*").problem == "check character"


def test_din_flags_60_to_96_carry_the_check_value() -> None:
    assert Din.parse("G12349865432177").flags == "77"  # 60 + 17 ('H')
    error = problem_of("DIN", "G12349865432161")
    assert error.problem == "check character"
    assert "flags '61' encode check value 1" in str(error)


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("O1234", 25, 1), "facility"),
        (("G1234", 100, 1), "year"),
        (("G1234", -1, 1), "year"),
        (("G1234", 25, 0), "sequence"),
        (("G1234", 25, 1_000_000), "sequence"),
    ],
)
def test_issue_din_refuses_out_of_range(args: tuple[str, int, int], problem: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        issue_din(*args)
    assert caught.value.problem == problem


def test_issue_din_refuses_bad_flags() -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        issue_din("G1234", 25, 1, flags="X1")
    assert caught.value.problem == "flags"


def test_din_constructor_validates() -> None:
    with pytest.raises(InvalidIdentifier):
        Din("G1234", "98", "65432", "00")


@given(fins, years, sequence_numbers, flags)
def test_issued_din_round_trips_with_right_check_character(
    fin: str, year: int, number: int, flag_text: str
) -> None:
    din = issue_din(fin, year, number, flags=flag_text)
    assert din.check_character == mod37_2_check_character(din.data)
    assert Din.parse(str(din)) == din
    assert Din.parse(din.with_check_character()) == din
    assert din.eye_readable().replace(" ", "") == din.with_check_character()


@given(
    fins,
    years,
    sequence_numbers,
    st.integers(min_value=0, max_value=12),
    st.sampled_from(ALNUM),
)
def test_any_single_substitution_is_detected(
    fin: str, year: int, number: int, position: int, replacement: str
) -> None:
    din = issue_din(fin, year, number)
    data = din.data
    if data[position] == replacement:
        return
    corrupted = data[:position] + replacement + data[position + 1 :]
    assert mod37_2_check_character(corrupted) != din.check_character
    with pytest.raises(InvalidIdentifier):
        Din.parse(corrupted + din.flags + din.check_character)


@given(fins, years, st.integers(min_value=0, max_value=12), st.sampled_from(string.digits))
def test_digit_substitution_in_a_well_formed_din_is_a_check_character_error(
    fin: str, year: int, position: int, digit: str
) -> None:
    din = issue_din(fin, year, 654321)
    data = din.data
    if position == 0 or data[position] == digit:
        return  # position 0 may legitimately hold a letter; digits elsewhere stay well formed
    corrupted = data[:position] + digit + data[position + 1 :]
    with pytest.raises(InvalidIdentifier) as caught:
        Din.parse(corrupted + din.flags + din.check_character)
    assert caught.value.problem == "check character"


# --- COI -----------------------------------------------------------------------------


def test_coi_parses_design_example() -> None:
    coi = Coi.parse("CHA123425000017")
    assert (coi.fin, coi.year, coi.sequence) == ("A1234", "25", "000017")
    assert str(coi) == coi.value == "CHA123425000017"
    assert Coi.parse(" CHA123425000017\t") == coi


def test_coi_accepts_alphanumeric_sequence() -> None:
    assert Coi.parse("CH9000125AB12CZ").sequence == "AB12CZ"


def test_issue_coi_uses_zero_padded_decimal_sequence() -> None:
    assert issue_coi("A1234", 25, 17) == Coi.parse("CHA123425000017")
    assert str(issue_coi("A1234", 5, 999_999)) == "CHA123405999999"
    assert CoiIssuer("A1234", 25).issue(1).sequence == "000001"


def test_coi_length_message() -> None:
    error = problem_of("COI", "CHA12342500001")
    assert error.problem == "length"
    assert str(error).startswith("COI 'CHA12342500001' has length 14; expected 15 characters")


def test_coi_character_set() -> None:
    error = problem_of("COI", "CHa123425000017")
    assert error.problem == "character set"
    assert "character 'a' at position 3 is not allowed" in str(error)


def test_coi_prefix() -> None:
    error = problem_of("COI", "XHA123425000017")
    assert error.problem == "prefix"
    assert "expected 'CH'" in str(error)


def test_coi_forbidden_first_fin_character() -> None:
    error = problem_of("COI", "CHO123425000017")
    assert error.problem == "facility"
    assert "'O1234'" in str(error)


def test_coi_year() -> None:
    assert problem_of("COI", "CHA12342X000017").problem == "year"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (("A123", 25, 1), "facility"),
        (("O1234", 25, 1), "facility"),
        (("A1234", 2025, 1), "year"),
        (("A1234", 25, 0), "sequence"),
        (("A1234", 25, 1_000_000), "sequence"),
    ],
)
def test_issue_coi_refuses_out_of_range(args: tuple[str, int, int], problem: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        issue_coi(*args)
    assert caught.value.problem == problem
    assert caught.value.kind == "COI"


@given(fins, years, sequence_numbers)
def test_issued_coi_round_trips(fin: str, year: int, number: int) -> None:
    coi = issue_coi(fin, year, number)
    assert len(str(coi)) == 15
    assert Coi.parse(str(coi)) == coi
    assert int(coi.sequence) == number


@given(fins, years, sequence_numbers, sequence_numbers)
def test_distinct_numbers_give_distinct_cois(fin: str, year: int, a: int, b: int) -> None:
    assert (issue_coi(fin, year, a) == issue_coi(fin, year, b)) == (a == b)
