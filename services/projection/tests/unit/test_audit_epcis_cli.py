"""`v2v audit epcis` on a generated history file: one chain (--coi) or every chain (--all) as
a schema-valid EPCIS 2.0 document, to stdout or --out, with the events the projection's HTTP
read gives for the same envelopes; usage problems exit 2."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from v2v_platform.envelope.codec import decode
from v2v_projection.audit.cli import app
from v2v_projection.history_file import write_history
from v2v_projection.standards.epcis import epcis_events
from v2v_projection.standards.epcis_schema import schema_errors
from v2v_testkit.audit import partitioned
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

ENV = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}


@dataclass(frozen=True)
class Files:
    generated: GeneratedHistory
    history: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("audit-epcis")
    generated = generate_history(63_000, 3)
    header, records = partitioned(generated.by_topic)
    write_history(directory / "history.v2v", header, records)
    return Files(generated, directory / "history.v2v")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, ["epcis", *args], env=ENV)


def chain_records(files: Files, coi: str) -> list[bytes]:
    values = [v for vs in files.generated.by_topic.values() for v in vs]
    return [v for v in values if decode(v).coi == coi]


def events(document: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    return found


def test_one_chain_to_stdout(files: Files) -> None:
    coi = files.generated.cois[0]

    result = run("--coi", coi, "--file", str(files.history))

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert schema_errors(document) == []
    assert events(document) == epcis_events(chain_records(files, coi))


def test_every_chain_to_a_file(files: Files, tmp_path: Path) -> None:
    out = tmp_path / "all.jsonld"

    result = run("--all", "--file", str(files.history), "--out", str(out))

    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert schema_errors(document) == []
    expected = [
        event
        for coi in sorted(files.generated.cois)
        for event in epcis_events(chain_records(files, coi))
    ]
    assert events(document) == expected
    assert f"{len(expected)} EPCIS events of 3 chain(s) written to {out}" in result.output


@pytest.mark.parametrize(
    "args",
    [[], ["--all", "--coi", "CHA123425000017"]],
    ids=["neither", "both"],
)
def test_coi_or_all_is_required(files: Files, args: list[str]) -> None:
    result = run(*args, "--file", str(files.history))

    assert result.exit_code == 2
    assert "give --coi COI or --all" in result.output


def test_an_unknown_chain_is_a_usage_problem(files: Files) -> None:
    result = run("--coi", "CHZ999925999999", "--file", str(files.history))

    assert result.exit_code == 2
    assert "no chain for COI 'CHZ999925999999'" in result.output
