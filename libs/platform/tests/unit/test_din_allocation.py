"""Declared DIN allocations (issue 14, invariant I1): under one FIN every DIN-issuing service
numbers from its own declared block; undeclared or overlapping blocks stop a service from
starting, and nothing is issued past a block's end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from v2v_platform.din_allocation import (
    ALLOCATIONS_FILE,
    DinAllocationError,
    DinAllocations,
    DinBlock,
    DinBlockExhausted,
    IssuingService,
    declare_all,
    declared_block,
)
from v2v_platform.din_allocation.cli import app
from v2v_platform.errors import Refused

FIN = "S1234"
INTAKE = IssuingService("SHEBA", "intake")
MANUFACTURING = IssuingService("SHEBA", "manufacturing")


def test_an_in_house_site_gets_two_disjoint_blocks_under_its_one_fin(tmp_path: Path) -> None:
    allocations = declare_all(tmp_path, [(FIN, INTAKE), (FIN, MANUFACTURING)])
    intake = declared_block(tmp_path, FIN, "SHEBA", "intake")
    manufacturing = declared_block(tmp_path, FIN, "SHEBA", "manufacturing")
    assert (intake.first, intake.last) == (1, 499_999)
    assert (manufacturing.first, manufacturing.last) == (500_000, 999_999)
    assert not intake.overlaps(manufacturing) and not allocations.overlaps()
    document = json.loads((tmp_path / ALLOCATIONS_FILE).read_text())
    assert document["allocations"] == [
        {"fin": FIN, "issuer": "SHEBA/intake", "first": 1, "last": 499_999},
        {"fin": FIN, "issuer": "SHEBA/manufacturing", "first": 500_000, "last": 999_999},
    ]


def test_declaring_again_changes_nothing(tmp_path: Path) -> None:
    declare_all(tmp_path, [(FIN, INTAKE)])
    written = (tmp_path / ALLOCATIONS_FILE).read_text()
    assert declare_all(tmp_path, [(FIN, INTAKE)]) == DinAllocations.read(tmp_path)
    assert (tmp_path / ALLOCATIONS_FILE).read_text() == written


def test_a_service_without_an_allocation_file_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(DinAllocationError) as refused:
        declared_block(tmp_path, FIN, "SHEBA", "intake")
    message = str(refused.value)
    assert "FIN S1234, issuer SHEBA/intake" in message and "does not exist" in message
    assert f"--fin {FIN} --issuer SHEBA/intake" in message  # how to declare it


def test_a_service_without_a_block_of_its_own_does_not_start(tmp_path: Path) -> None:
    declare_all(tmp_path, [(FIN, INTAKE), ("A1234", MANUFACTURING)])
    with pytest.raises(DinAllocationError) as refused:
        declared_block(tmp_path, FIN, "SHEBA", "manufacturing")
    message = str(refused.value)
    assert "FIN S1234, issuer SHEBA/manufacturing: no DIN block is declared" in message
    assert "it has one under FIN A1234" in message


def test_a_service_whose_block_overlaps_another_issuers_does_not_start(tmp_path: Path) -> None:
    overlapping = DinAllocations(
        (DinBlock(FIN, INTAKE, 1, 600_000), DinBlock(FIN, MANUFACTURING, 500_000, 999_999))
    )
    overlapping.write(tmp_path)  # e.g. a file edited by hand
    for context, other in (("intake", MANUFACTURING), ("manufacturing", INTAKE)):
        with pytest.raises(DinAllocationError) as refused:
            declared_block(tmp_path, FIN, "SHEBA", context)
        message = str(refused.value)
        assert f"FIN S1234, issuer SHEBA/{context}" in message
        assert f"overlaps {other}'s block" in message


def test_the_same_numbers_under_another_fin_do_not_overlap(tmp_path: Path) -> None:
    hospital = IssuingService("HOSP-A", "intake")
    declare_all(tmp_path, [("A1234", hospital), (FIN, INTAKE)])
    assert declared_block(tmp_path, "A1234", "HOSP-A", "intake").first == 1
    assert declared_block(tmp_path, FIN, "SHEBA", "intake").first == 1


def test_declaring_an_overlapping_block_is_refused() -> None:
    declared = DinAllocations().declare(FIN, INTAKE)
    second_site = IssuingService("SHEBA-2", "intake")  # two sites sharing a FIN
    with pytest.raises(DinAllocationError, match="would overlap SHEBA/intake's block 1-499999"):
        declared.declare(FIN, second_site)
    by_hand = DinAllocations((*declared.blocks, DinBlock(FIN, second_site, 400_000, 499_999)))
    assert by_hand.overlaps() == [(by_hand.blocks[0], by_hand.blocks[1])]
    shrunk = declared.declare(FIN, INTAKE, 1, 399_999, replace_existing=True)
    assert not shrunk.declare(FIN, second_site, 400_000, 499_999).overlaps()
    with pytest.raises(DinAllocationError, match="needs --replace"):
        declared.declare(FIN, INTAKE, 1, 10)


def test_numbers_start_at_the_block_and_continue_after_the_last_issued() -> None:
    block = DinBlock(FIN, MANUFACTURING, 500_000, 500_009)
    assert block.next_numbers(0, 3) == [500_000, 500_001, 500_002]
    assert block.next_numbers(500_002, 2) == [500_003, 500_004]  # after a restart: persisted
    assert block.next_numbers(17, 1) == [500_000]  # numbered from 1 before blocks existed


def test_nothing_is_issued_past_the_end_of_the_block() -> None:
    block = DinBlock(FIN, INTAKE, 1, 5)
    assert block.next_numbers(3, 2) == [4, 5]
    with pytest.raises(DinBlockExhausted) as refused:
        block.next_numbers(4, 2)
    assert isinstance(refused.value, Refused)  # answered as a refusal, FAILED_PRECONDITION
    message = str(refused.value)
    assert "SHEBA/intake under FIN S1234 (1-5) is exhausted: 2 DIN(s) asked, 1 left" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not JSON"),
        ('{"format": 2, "allocations": []}', "expected"),
        ('{"format": 1, "allocations": [{"fin": "S1234"}]}', "malformed"),
        (
            '{"format": 1, "allocations": [{"fin": "S1234", "issuer": "SHEBA/release",'
            ' "first": 1, "last": 9}]}',
            "issues no DINs",
        ),
        (
            '{"format": 1, "allocations": [{"fin": "O1234", "issuer": "SHEBA/intake",'
            ' "first": 1, "last": 9}]}',
            "FIN 'O1234'",
        ),
        (
            '{"format": 1, "allocations": [{"fin": "S1234", "issuer": "SHEBA/intake",'
            ' "first": 0, "last": 9}]}',
            "not a range",
        ),
        (
            '{"format": 1, "allocations": ['
            '{"fin": "S1234", "issuer": "SHEBA/intake", "first": 1, "last": 9},'
            '{"fin": "S1234", "issuer": "SHEBA/intake", "first": 10, "last": 19}]}',
            "more than one block",
        ),
    ],
)
def test_a_malformed_allocation_file_is_refused_naming_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / ALLOCATIONS_FILE).write_text(text)
    with pytest.raises(DinAllocationError, match=problem):
        declared_block(tmp_path, FIN, "SHEBA", "intake")


def test_the_command_declares_shows_and_refuses_overlaps(tmp_path: Path) -> None:
    runner = CliRunner()
    out = ["--out", str(tmp_path)]
    first = runner.invoke(app, ["declare", *out, "--fin", FIN, "--issuer", "SHEBA/intake"])
    assert first.exit_code == 0 and "S1234 SHEBA/intake: 1-499999" in first.output
    again = runner.invoke(app, ["declare", *out, "--fin", FIN, "--issuer", "SHEBA/intake"])
    assert again.exit_code == 0 and "unchanged" in again.output
    clash = ["--fin", FIN, "--issuer", "SHEBA/manufacturing", "--first", "400000"]
    refused = runner.invoke(app, ["declare", *out, *clash])
    assert refused.exit_code == 2 and "overlap" in refused.output
    shown = runner.invoke(app, ["show", *out])
    assert shown.exit_code == 0 and "SHEBA/intake" in shown.output
