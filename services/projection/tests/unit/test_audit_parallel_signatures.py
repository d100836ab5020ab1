"""Parallel signature checks in `v2v audit verify` (issue 18 item 5): `verify_history(workers=N)`
checks the deferred Ed25519 signatures in N forked processes, in chunks; the outcome must be
the one of checking them in this process (`workers=1`): the same breaks in the same order,
the same counts, in both modes (every signature, or only those no checkpoint covers).

Small chunks make the tamper suite's small histories use the workers."""

from __future__ import annotations

import importlib
import multiprocessing
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from v2v_platform.envelope.codec import decode, encode, seal
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import DeferredSignature, Location, deferred_signature_breaks
from v2v_projection.audit.cli import app
from v2v_projection.audit.parallel_signatures import SignatureChecks
from v2v_projection.audit.verification import VerifyOutcome, verify_history
from v2v_projection.history_file import HistoryHeader, HistoryRecord, write_history
from v2v_testkit.audit import partitioned, write_key_ring
from v2v_testkit.checkpointed import is_checkpoint, with_checkpoints
from v2v_testkit.synthetic.chains import generate_history

tamper: Any = importlib.import_module("test_audit_tamper")

MUTATIONS = 200  # of the tamper suite's seeded mutations, each verified 4 ways
CHUNK = 40  # signatures per chunk: several chunks per history, so the workers get them


@pytest.fixture(scope="module")
def world() -> Any:
    """The tamper suite's world: its history with checkpoints, 3 partitions a topic."""
    generated = generate_history(tamper.SEED, tamper.PATIENTS)
    by_topic = with_checkpoints(generated.by_topic, generated.signers)
    header, records = partitioned(by_topic, tamper.PARTITIONS)
    rogues = {site: tamper._rogue(site) for site in generated.signers}
    return tamper.World(generated, header, records, rogues)


def _verify(
    header: HistoryHeader,
    records: list[HistoryRecord],
    ring: KeyRing,
    workers: int,
    every: bool,
    external: list[bytes] | None = None,
) -> VerifyOutcome:
    return verify_history(
        header,
        records,
        ring,
        external_checkpoints=external,
        check_every_signature=every,
        workers=workers,
        chunk=CHUNK,
    )


@pytest.mark.parametrize("every", [True, False], ids=["every-signature", "covered-skipped"])
def test_the_tamper_suites_mutations_give_the_same_outcome_with_two_workers(
    world: Any, every: bool
) -> None:
    rng = random.Random(tamper.SEED)
    ring = tamper.MemoKeyRing(world.generated.keys)
    kinds = sorted(tamper.MUTATIONS_BY_KIND)
    differences = []
    signature_breaks = 0
    for number in range(MUTATIONS):
        kind = rng.choice(kinds)
        copy = world.fresh()
        tamper.MUTATIONS_BY_KIND[kind](world, copy, rng)
        external = world.checkpoints if kind in tamper.EXTERNAL_KINDS else None
        alone = _verify(copy.header, copy.records, ring, 1, every, external)
        parallel = _verify(copy.header, copy.records, ring, 2, every, external)
        assert alone.breaks, f"mutation {number} ({kind}) undetected"
        if parallel != alone:
            differences.append(f"mutation {number} ({kind}): {alone} != {parallel}")
        signature_breaks += sum(1 for b in alone.breaks if b.check == "signature")
    assert differences == []
    assert signature_breaks > 0  # some mutations are caught by a signature the workers checked
    assert multiprocessing.active_children() == []  # every pool was closed and joined


def test_an_untouched_history_verifies_the_same_with_workers(world: Any) -> None:
    ring = world.generated.keys
    for every in (True, False):
        alone = _verify(world.header, world.records, ring, 1, every)
        parallel = _verify(world.header, world.records, ring, 2, every)
        assert parallel == alone
        assert alone.breaks == []
    every_outcome = _verify(world.header, world.records, ring, 2, every=True)
    assert every_outcome.signatures_checked == len(world.records) > 2 * CHUNK


def test_a_bad_signature_found_in_a_worker_is_the_in_process_break(world: Any) -> None:
    ring: KeyRing = world.generated.keys
    envelopes = [(r, decode(r.value)) for r in world.records if not is_checkpoint(r)]
    deferred = [
        DeferredSignature(
            e.signing_key_id,
            e.hash,
            e.signature,
            Location(r.topic, r.partition, r.offset),
            e.aggregate_id,
            e.aggregate_version,
            e.site_id,
        )
        for r, e in envelopes[: 3 * CHUNK]
    ]
    bad = CHUNK + 7  # in the second chunk
    rogue = world.rogues[deferred[bad].site_id]
    deferred[bad] = deferred[bad]._replace(signature=rogue.sign(deferred[bad].digest))
    expected = deferred_signature_breaks(deferred[bad], ring)
    assert [b.check for b in expected] == ["signature"]

    checks = SignatureChecks(ring, workers=2, chunk=CHUNK)
    checks.add(deferred[:10])
    checks.add(deferred[10:])
    found = checks.finish()
    assert checks.parallel  # the chunks went to worker processes
    assert found == [(bad, expected[0])]
    assert checks.checked == len(deferred)
    alone = SignatureChecks(ring, workers=1, chunk=CHUNK)
    alone.add(deferred)
    assert alone.finish() == found
    assert not alone.parallel
    assert multiprocessing.active_children() == []


def test_a_signature_break_keeps_its_place_among_the_records_breaks(world: Any) -> None:
    """Every signature checked: a record whose event id is wrong and whose signature is forged
    gives event_id then signature at its place, before the next version's prev_hash break,
    with or without workers (as when the signature was checked as read)."""
    records: list[HistoryRecord] = list(world.records)
    events = [(i, decode(r.value)) for i, r in enumerate(records) if not is_checkpoint(r)]
    index, envelope = next(
        (i, e)
        for i, e in events
        if e.aggregate_version == 1
        and any(o.aggregate_id == e.aggregate_id and o.aggregate_version == 2 for _, o in events)
    )
    envelope.event_id = "not-the-event-id"
    sealed = seal(envelope, envelope.prev_hash, world.generated.signers[envelope.site_id])
    sealed.signature = world.rogues[envelope.site_id].sign(sealed.hash)
    records[index] = replace(records[index], value=encode(sealed))
    ring = world.generated.keys
    alone = _verify(world.header, records, ring, 1, every=True)
    parallel = _verify(world.header, records, ring, 2, every=True)
    assert parallel == alone
    at = records[index].offset
    first = [(b.check, b.location.offset, b.version) for b in alone.breaks[:3]]
    assert first[:2] == [("event_id", at, 1), ("signature", at, 1)]
    assert first[2][0] == "prev_hash" and first[2][2] == 2
    default = _verify(world.header, records, ring, 2, every=False)
    assert sorted(map(str, default.breaks)) == sorted(map(str, alone.breaks))


def _cli(arguments: list[str]) -> Any:
    env = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}
    return CliRunner().invoke(app, arguments, env=env)


def test_verify_cli_workers(world: Any, tmp_path: Path) -> None:
    records: list[HistoryRecord] = list(world.records)
    index = next(i for i, r in enumerate(records) if not is_checkpoint(r))
    envelope = decode(records[index].value)
    envelope.signature = world.rogues[envelope.site_id].sign(envelope.hash)
    records[index] = replace(records[index], value=encode(envelope))
    write_history(tmp_path / "history.v2v", world.header, records)
    keys = write_key_ring(tmp_path / "pki", world.generated.keys)
    base = ["verify", "--file", str(tmp_path / "history.v2v"), "--keys", str(keys)]
    outputs = []
    for workers in ("1", "2"):
        result = _cli([*base, "--check-every-signature", "--workers", workers])
        assert result.exit_code == 1, result.output
        assert "signature" in result.stdout
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
    default = _cli(base)  # one worker per core
    assert default.exit_code == 1, default.output
    for bad in ("0", "-2"):
        result = _cli([*base, "--workers", bad])
        assert result.exit_code == 2
        assert "--workers" in result.output
