"""`v2v audit` through typer's CliRunner on a generated history file: exit codes, messages,
the replay output and the HTML report."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from v2v_platform.envelope.codec import decode, encode
from v2v_projection.audit import sources
from v2v_projection.audit.cli import app
from v2v_projection.history_file import HistoryRecord, read_history, write_history
from v2v_testkit.audit import partitioned, write_key_ring
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

SEED = 62_000
PATIENTS = 4
ENV = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}


@dataclass(frozen=True)
class Files:
    generated: GeneratedHistory
    history: Path
    keys: Path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("audit-cli")
    generated = generate_history(SEED, PATIENTS)
    header, records = partitioned(generated.by_topic)
    write_history(directory / "history.v2v", header, records)
    keys = write_key_ring(directory / "pki", generated.keys)
    return Files(generated, directory / "history.v2v", keys)


def _run(*args: str, env: dict[str, str | None] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={**ENV, **(env or {})})


def _replay_json(files: Files, *args: str) -> Any:
    result = _run("replay", "--file", str(files.history), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_verify_of_an_untouched_export_is_clean(files: Files) -> None:
    result = _run("verify", "--file", str(files.history), "--keys", str(files.keys))
    assert result.exit_code == 0, result.output
    records = files.generated.event_count
    streams = {decode(v).aggregate_id for vs in files.generated.by_topic.values() for v in vs}
    assert result.stdout.strip() == (
        f"clean: {records} records, {len(streams)} aggregates, 0 duplicates, 0 breaks;"
        f" {records} signatures checked, 0 events covered by checkpoints"
    )


def test_verify_exits_1_and_prints_each_break_with_its_location(
    files: Files, tmp_path: Path
) -> None:
    data = bytearray(files.history.read_bytes())
    data[-40] ^= 0xFF
    tampered = tmp_path / "tampered.v2v"
    tampered.write_bytes(bytes(data))
    result = _run("verify", "--file", str(tampered), "--keys", str(files.keys))
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("BREAKS FOUND: ")
    assert "v2v." in lines[0] and "@" in lines[0] and "aggregate " in lines[0]


def test_verify_reads_the_key_ring_from_v2v_pki_dir(files: Files) -> None:
    result = _run("verify", "--file", str(files.history), env={"V2V_PKI_DIR": str(files.keys)})
    assert result.exit_code == 0, result.output


def test_verify_with_keys_of_another_consortium_finds_signature_breaks(
    files: Files, tmp_path: Path
) -> None:
    strangers = write_key_ring(tmp_path / "other", generate_history(SEED + 1, 1).keys)
    result = _run("verify", "--file", str(files.history), "--keys", str(strangers))
    assert result.exit_code == 1
    assert "signature at v2v." in result.stdout and "unknown signing key" in result.stdout


@pytest.mark.parametrize("command", ["verify", "replay"])
def test_a_missing_file_is_an_input_error(command: str, files: Files, tmp_path: Path) -> None:
    keys = ["--keys", str(files.keys)] if command == "verify" else []
    result = _run(command, "--file", str(tmp_path / "nope.v2v"), *keys)
    assert result.exit_code == 2
    assert f"error: history file {tmp_path / 'nope.v2v'} does not exist" in result.stderr


def test_a_file_that_is_not_a_history_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = _run("replay", "--file", str(path))
    assert result.exit_code == 2
    assert "is not a v2v history file (bad magic)" in result.stderr


def test_verify_without_a_key_ring_is_an_input_error(files: Files, tmp_path: Path) -> None:
    result = _run("verify", "--file", str(files.history))
    assert result.exit_code == 2
    assert "no consortium key ring: pass --keys DIR" in result.stderr
    result = _run("verify", "--file", str(files.history), "--keys", str(tmp_path))
    assert result.exit_code == 2
    assert f"no key ring at {tmp_path / 'signing-keys.json'}" in result.stderr


def test_without_file_or_bootstrap_there_is_nothing_to_read(files: Files) -> None:
    result = _run("verify", "--keys", str(files.keys))
    assert result.exit_code == 2
    assert "give --file FILE, or --bootstrap HOST:PORT" in result.stderr


def test_export_needs_a_broker_and_says_when_it_cannot_reach_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "BOOTSTRAP_TIMEOUT_MS", 1000)
    result = _run("export", "--out", str(tmp_path / "h.v2v"))
    assert result.exit_code == 2
    assert "export reads Kafka: give --bootstrap" in result.stderr
    result = _run("export", "--out", str(tmp_path / "h.v2v"), "--bootstrap", "127.0.0.1:1")
    assert result.exit_code == 2
    assert "cannot reach Kafka at 127.0.0.1:1 (no answer within 1 s)" in result.stderr
    assert not (tmp_path / "h.v2v").exists()
    result = _run("export", "--out", str(tmp_path / "h.v2v"), "--bootstrap", "kafka:port")
    assert result.exit_code == 2
    assert "Kafka bootstrap 'kafka:port': expected HOST:PORT[,HOST:PORT...]" in result.stderr


def test_replay_lists_every_chain(files: Files) -> None:
    result = _run("replay", "--file", str(files.history))
    assert result.exit_code == 0, result.output
    assert f"{PATIENTS} chains at the end of the history" in result.stdout
    for coi in files.generated.cois:
        assert coi in result.stdout


def test_replay_json_has_every_chain_and_the_kpis(files: Files) -> None:
    document = _replay_json(files)
    assert sorted(c["coi"] for c in document["chains"]) == sorted(files.generated.cois)
    assert isinstance(document["kpis"], dict)


def test_replay_of_one_chain_in_detail(files: Files) -> None:
    coi = files.generated.cois[0]
    chain = _replay_json(files, "--coi", coi)
    assert chain["coi"] == coi
    result = _run("replay", "--file", str(files.history), "--coi", coi)
    assert result.exit_code == 0, result.output
    assert f"Chain {coi}" in result.stdout
    for title in (
        "Units and lineage",
        "Custody",
        "Shipments (temperature)",
        "E-signatures",
        "Alerts",
    ):
        assert title in result.stdout
    assert chain["units"][0]["din"] in result.stdout
    for shipment in chain["shipments"]:
        assert shipment["shipment_id"] in result.stdout


def test_replay_as_of_a_time_sees_only_what_was_recorded_by_then(files: Files) -> None:
    assert _replay_json(files, "--as-of", "2000-01-01T00:00:00Z")["chains"] == []
    full = {c["coi"]: c for c in _replay_json(files)["chains"]}
    first = files.generated.cois[0]
    moment = full[first]["units"][0]["created_at"]
    early = {c["coi"]: c for c in _replay_json(files, "--as-of", moment)["chains"]}
    assert first in early
    assert early[first] != full[first]


def test_a_bad_as_of_is_a_usage_error(files: Files) -> None:
    result = _run("replay", "--file", str(files.history), "--as-of", "yesterday")
    assert result.exit_code == 2
    assert "'yesterday' is not an ISO-8601 UTC time" in result.output


def test_an_unknown_coi_is_an_input_error(files: Files, tmp_path: Path) -> None:
    result = _run("replay", "--file", str(files.history), "--coi", "CHZ999925999999")
    assert result.exit_code == 2
    assert f"no chain for COI 'CHZ999925999999' in this history ({PATIENTS} chains" in (
        result.stderr
    )
    out = tmp_path / "r.html"
    args = ("report", "--file", str(files.history), "--coi", "CHZ999925999999", "--out", str(out))
    result = _run(*args)
    assert result.exit_code == 2 and not out.exists()


def test_report_writes_printable_html_with_the_chart_and_every_signature(
    files: Files, tmp_path: Path
) -> None:
    signed = [c for c in _replay_json(files)["chains"] if c["signatures"]]
    assert signed, "the generated history has e-signatures"
    chain = signed[0]
    out = tmp_path / "report.html"
    args = ("report", "--file", str(files.history), "--coi", chain["coi"], "--out", str(out))
    result = _run(*args)
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<svg" in html and "<script" not in html
    for signature in chain["signatures"]:
        assert signature["printed_name"] in html
        assert signature["signed_at"] in html
        assert signature["record_hash"] in html
    for unit in chain["units"]:
        assert unit["din"] in html


def test_report_into_a_missing_directory_is_an_input_error(files: Files, tmp_path: Path) -> None:
    coi = files.generated.cois[0]
    out = tmp_path / "no" / "such" / "dir" / "r.html"
    result = _run("report", "--file", str(files.history), "--coi", coi, "--out", str(out))
    assert result.exit_code == 2
    assert f"error: cannot write {out}" in result.stderr


def _rewritten(files: Files, tmp_path: Path, change: Callable[[HistoryRecord], bytes]) -> Path:
    """A copy of the history file with the first CollectionRecorded record's value changed."""
    header, records = read_history(files.history)
    rewritten = []
    changed = False
    for record in records:
        if not changed and decode(record.value).event_type.endswith(".CollectionRecorded"):
            record = replace(record, value=change(record))
            changed = True
        rewritten.append(record)
    path = tmp_path / "rewritten.v2v"
    write_history(path, header, rewritten)
    return path


def _garbled_payload(record: HistoryRecord) -> bytes:
    envelope = decode(record.value)
    envelope.payload = b"\xff\xff\xff"
    return encode(envelope)


def test_replay_skips_records_that_are_not_envelopes_and_says_so(
    files: Files, tmp_path: Path
) -> None:
    path = _rewritten(files, tmp_path, lambda record: b"\xff\xff\xff")
    result = _run("replay", "--file", str(path))
    assert result.exit_code == 0, result.output
    assert "warning: 1 record(s) are not envelopes and were skipped" in result.stderr


def test_replay_of_a_payload_that_does_not_decode_is_an_input_error(
    files: Files, tmp_path: Path
) -> None:
    path = _rewritten(files, tmp_path, _garbled_payload)
    result = _run("replay", "--file", str(path))
    assert result.exit_code == 2
    assert "a record's payload does not decode" in result.stderr
    assert "run `v2v audit verify` to locate it" in result.stderr
    assert "Traceback" not in result.output
