"""`v2v audit checkpoints pull`, `verify --checkpoints` and `prove` through typer's CliRunner
on a generated history with signed checkpoints (issue 15 items 1, 3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from v2v_platform.checkpoints.merkle import leaf_bytes, leaf_hash, verify_inclusion
from v2v_platform.envelope.codec import decode
from v2v_projection.audit.cli import app
from v2v_projection.history_file import HistoryRecord, read_history, write_history
from v2v_testkit.audit import partitioned, write_key_ring
from v2v_testkit.checkpointed import is_checkpoint, remove_renumbered, rolled_back, with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

SEED = 15_016
ENV = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}


@dataclass(frozen=True)
class Files:
    generated: GeneratedHistory
    history: Path
    plain: Path
    keys: Path
    records: list[HistoryRecord]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    directory = tmp_path_factory.mktemp("audit-checkpoints")
    generated = generate_history(SEED, 3)
    header, records = partitioned(with_checkpoints(generated.by_topic, generated.signers))
    write_history(directory / "history.v2v", header, records)
    write_history(directory / "plain.v2v", *partitioned(generated.by_topic))
    keys = write_key_ring(directory / "pki", generated.keys)
    return Files(generated, directory / "history.v2v", directory / "plain.v2v", keys, records)


def _run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env=ENV)


def _rolled_back(files: Files, path: Path, rewrite: bool) -> tuple[Path, str]:
    """The history rolled back to checkpoint 1 of the service with the most checkpoints."""
    header, stored = read_history(files.history)
    records = list(stored)
    streams: dict[str, int] = {}
    for record in records:
        if is_checkpoint(record):
            envelope = decode(record.value)
            streams[envelope.aggregate_id] = envelope.aggregate_version
    stream = max(streams, key=lambda s: streams[s])
    site = next(
        decode(r.value).site_id
        for r in records
        if is_checkpoint(r) and decode(r.value).aggregate_id == stream
    )
    signer = files.generated.signers[site] if rewrite else None
    write_history(path, *rolled_back(header, records, stream, 1, rewrite=signer))
    return path, site


def test_verify_counts_the_checkpoints_and_replay_ignores_them(files: Files) -> None:
    result = _run("verify", "--file", str(files.history), "--keys", str(files.keys))
    assert result.exit_code == 0, result.output
    checkpoints = sum(1 for r in files.records if is_checkpoint(r))
    assert f" {checkpoints} checkpoints, 0 breaks" in result.stdout
    with_them = _run("replay", "--file", str(files.history), "--json")
    without = _run("replay", "--file", str(files.plain), "--json")
    assert with_them.exit_code == without.exit_code == 0
    assert json.loads(with_them.stdout) == json.loads(without.stdout)


def test_pull_copies_the_checkpoints_and_merges_with_the_copy_held(
    files: Files, tmp_path: Path
) -> None:
    copy = tmp_path / "checkpoints.v2v"
    first = _run("checkpoints", "pull", "--file", str(files.history), "--out", str(copy))
    assert first.exit_code == 0, first.output
    total = sum(1 for r in files.records if is_checkpoint(r))
    assert f"{total} checkpoints in {copy} ({total} new, 0 held before)" in first.stdout
    rolled, _ = _rolled_back(files, tmp_path / "rolled.v2v", rewrite=True)
    again = _run("checkpoints", "pull", "--file", str(rolled), "--out", str(copy))
    assert again.exit_code == 1, again.output
    assert "forked" in again.stderr
    assert f"{total} checkpoints in {copy} (0 new, {total} held before)" in again.stdout
    _, held = read_history(copy)
    assert sorted(r.value for r in held) == sorted(
        r.value for r in files.records if is_checkpoint(r)
    )


@pytest.mark.parametrize("rewrite", [False, True], ids=["dropped", "rewritten"])
def test_verify_against_the_external_copy_catches_a_rollback(
    files: Files, tmp_path: Path, rewrite: bool
) -> None:
    copy = tmp_path / "checkpoints.v2v"
    pulled = _run("checkpoints", "pull", "--file", str(files.history), "--out", str(copy))
    assert pulled.exit_code == 0, pulled.output
    rolled, site = _rolled_back(files, tmp_path / "rolled.v2v", rewrite)
    alone = _run("verify", "--file", str(rolled), "--keys", str(files.keys))
    assert alone.exit_code == 0, alone.output
    result = _run(
        "verify", "--file", str(rolled), "--keys", str(files.keys), "--checkpoints", str(copy)
    )
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    word = "forked" if rewrite else "dropped or rolled back"
    assert any(
        line.startswith("external_checkpoint") and word in line and f"site {site}" in line
        for line in lines
    ), lines
    assert "checkpoint sequence 2 " in result.stdout


def _coi(files: Files) -> str:
    return files.generated.cois[0]


def test_prove_prints_verified_inclusion_proofs_of_a_chains_heads(files: Files) -> None:
    coi = _coi(files)
    result = _run(
        "prove", "--coi", coi, "--file", str(files.history), "--keys", str(files.keys), "--json"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout.split("\nproven: ")[0])
    proofs = document["proofs"]
    streams = {
        decode(r.value).aggregate_id
        for r in files.records
        if not is_checkpoint(r) and decode(r.value).coi == coi
    }
    assert {p["aggregate_id"] for p in proofs} == streams
    for proof in proofs:
        assert proof["verified"] and proof["error"] == ""
        leaf = leaf_hash(
            leaf_bytes(proof["aggregate_id"], proof["version"], bytes.fromhex(proof["head_hash"]))
        )
        verify_inclusion(
            proof["leaf_index"],
            proof["tree_size"],
            leaf,
            [bytes.fromhex(node) for node in proof["audit_path"]],
            bytes.fromhex(proof["root"]),
        )
    assert result.stdout.strip().endswith(
        f"proven: {len(streams)} of {len(streams)} stream heads of {coi} proven"
    )
    text = _run("prove", "--coi", coi, "--file", str(files.history), "--keys", str(files.keys))
    assert text.exit_code == 0, text.output
    assert text.stdout.count("; verified") == len(streams)
    assert "audit path " in text.stdout and "root " in text.stdout


def test_prove_fails_with_the_reason_when_a_head_was_truncated(
    files: Files, tmp_path: Path
) -> None:
    coi = _coi(files)
    header, stored = read_history(files.history)
    records = list(stored)
    last = max(
        i for i, r in enumerate(records) if not is_checkpoint(r) and decode(r.value).coi == coi
    )
    truncated = tmp_path / "truncated.v2v"
    write_history(truncated, *remove_renumbered(header, records, {last}))
    copy = tmp_path / "checkpoints.v2v"
    _run("checkpoints", "pull", "--file", str(files.history), "--out", str(copy))
    for extra in ([], ["--checkpoints", str(copy)]):
        result = _run(
            "prove", "--coi", coi, "--file", str(truncated), "--keys", str(files.keys), *extra
        )
        assert result.exit_code == 1, result.output
        assert "NOT PROVEN: " in result.stdout and "truncated" in result.stdout


def test_prove_without_checkpoints_says_so(files: Files) -> None:
    coi = _coi(files)
    result = _run("prove", "--coi", coi, "--file", str(files.plain), "--keys", str(files.keys))
    assert result.exit_code == 1
    assert "no verified checkpoint" in result.stdout


def test_prove_of_an_unknown_chain_is_an_input_error(files: Files) -> None:
    result = _run(
        "prove", "--coi", "CHX000000000000", "--file", str(files.history), "--keys", str(files.keys)
    )
    assert result.exit_code == 2
    assert "no chain for COI" in result.stderr
