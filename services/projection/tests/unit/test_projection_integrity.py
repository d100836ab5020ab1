"""The integrity of one chain, verified at the time of the call (`ChainIntegrity.of`, issue 16),
with the signed checkpoints the projection consumes (`v2v.checkpoints.v1`, issue 15): each
stream's envelopes checked again (hash, signature, author, links, versions), and the latest
verified checkpoint of the stream's service with the inclusion proof of the committed head.
Forged checkpoints are quarantined and never used; checkpoints survive a restart."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from v2v_platform.auth.identity import Role
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC, read_checkpoint
from v2v_platform.checkpoints.merkle import Head, inclusion_proof, leaves_of
from v2v_platform.envelope.codec import decode, encode, envelope_hash
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.envelope.trust import EnvelopeGate
from v2v_platform.errors import NotFound
from v2v_platform.scope import Scope
from v2v_projection.audit.proofs import gather, prove
from v2v_projection.chain_projection import ChainProjection, Record
from v2v_projection.checkpoint_index import (
    ServiceCheckpoints,
    VerifiedCheckpoint,
    audit_path,
    merkle_levels,
)
from v2v_projection.history_file import HistoryRecord
from v2v_projection.integrity import ChainIntegrity
from v2v_projection.queries import ChainQueries
from v2v_projection.store import SqliteProjectionStore
from v2v_projection.verifier import InlineVerifier
from v2v_testkit.checkpointed import CheckpointLog, resealed_checkpoint, with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

SEED = 16_303
RELEASE = "v2v.release.events.v1"
AUDITOR = Scope("AUDIT-1", frozenset({Role.AUDITOR}))
STREAM_KEYS = {"aggregate_id", "aggregate_type", "topic", "site_id", "version", "hash"}
CHECKPOINT_KEYS = {
    "site_id", "sequence", "recorded_at", "version", "covers_head", "proof_verified",
    "tree_size", "leaf_index", "root",
}  # fmt: skip


@pytest.fixture(scope="module")
def generated() -> GeneratedHistory:
    return generate_history(SEED, 3)


@pytest.fixture(scope="module")
def checkpointed(generated: GeneratedHistory) -> dict[str, list[bytes]]:
    return with_checkpoints(generated.by_topic, generated.signers)


def records_of(by_topic: Mapping[str, Sequence[bytes]]) -> list[Record]:
    return [
        (topic, 0, offset, value)
        for topic, values in by_topic.items()
        for offset, value in enumerate(values)
    ]


def open_projection(path: Path, generated: GeneratedHistory) -> ChainProjection:
    verifier = InlineVerifier(EnvelopeGate(generated.keys))
    projection = ChainProjection(SqliteProjectionStore(path), verifier=verifier)
    projection.load()
    return projection


def integrity(projection: ChainProjection, coi: str, scope: Scope = AUDITOR) -> dict[str, Any]:
    return ChainIntegrity(ChainQueries(projection)).of(scope, coi)


def release_stream(answer: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in answer["streams"] if s["topic"] == RELEASE)


def heads_of(by_topic: Mapping[str, Sequence[bytes]], coi: str) -> dict[str, tuple[int, str]]:
    heads: dict[str, tuple[int, str]] = {}
    for values in by_topic.values():
        for value in values:
            envelope = decode(value)
            if envelope.coi == coi:
                heads[envelope.aggregate_id] = (envelope.aggregate_version, envelope.hash.hex())
    return heads


def test_a_clean_chain_with_checkpoints_is_clean_and_every_head_is_proven(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records_of(checkpointed))
    assert projection.untrusted_records == 0
    coi = generated.cois[0]

    answer = integrity(projection, coi)

    assert set(answer) == {
        "coi", "verified_at", "clean", "events", "untrusted_records", "breaks", "streams",
    }  # fmt: skip
    assert (answer["coi"], answer["clean"], answer["breaks"]) == (coi, True, [])
    assert answer["untrusted_records"] == 0
    assert answer["events"] == projection.read(lambda fold: fold.event_count(coi))
    heads = heads_of(generated.by_topic, coi)
    assert {s["aggregate_id"]: (s["version"], s["hash"]) for s in answer["streams"]} == heads
    history = [HistoryRecord(t, p, o, v) for t, p, o, v in records_of(checkpointed)]
    audited = {proof.aggregate_id: proof for proof in prove(gather(history, coi), generated.keys)}
    for stream in answer["streams"]:
        assert set(stream) == STREAM_KEYS | {"breaks", "checkpoint"}
        assert stream["breaks"] == []
        checkpoint = stream["checkpoint"]
        assert set(checkpoint) == CHECKPOINT_KEYS
        assert checkpoint["proof_verified"] and checkpoint["covers_head"]
        assert checkpoint["site_id"] == stream["site_id"]
        proof = audited[stream["aggregate_id"]]  # what `v2v audit prove` says of the stream
        assert proof.verified
        shown = [checkpoint[k] for k in ("sequence", "version", "tree_size", "leaf_index")]
        assert shown == [proof.sequence, proof.version, proof.tree_size, proof.leaf_index]
        assert checkpoint["root"] == proof.root.hex()


def test_a_head_after_the_latest_checkpoint_is_not_covered_but_its_committed_version_is_proven(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    coi = generated.cois[1]
    last = max(
        (i for i, value in enumerate(generated.by_topic[RELEASE]) if decode(value).coi == coi)
    )
    before = {**generated.by_topic, RELEASE: generated.by_topic[RELEASE][:last]}
    checkpoints = with_checkpoints(before, generated.signers)[CHECKPOINT_TOPIC]
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records_of({**generated.by_topic, CHECKPOINT_TOPIC: checkpoints}))

    answer = integrity(projection, coi)

    assert answer["clean"]
    late = decode(generated.by_topic[RELEASE][last])
    stream = next(s for s in answer["streams"] if s["aggregate_id"] == late.aggregate_id)
    assert stream["version"] == late.aggregate_version
    checkpoint = stream["checkpoint"]
    assert checkpoint["version"] == late.aggregate_version - 1
    assert (checkpoint["covers_head"], checkpoint["proof_verified"]) == (False, True)
    others = [s for s in answer["streams"] if s["aggregate_id"] != late.aggregate_id]
    assert all(s["checkpoint"]["covers_head"] for s in others)


def forged_checkpoints(generated: GeneratedHistory, qc_site: str) -> list[bytes]:
    """Checkpoints of the release topic over the QC lab's streams: one signed with a random
    key claiming the QC lab (on its checkpoint stream), one by a hospital with its real key
    (a site that may not author release events)."""
    forged = []
    for signer in (SiteSigningKey.generate(qc_site), generated.signers["HOSP-A"]):
        log = CheckpointLog(RELEASE, signer)
        for value in generated.by_topic[RELEASE]:
            envelope = decode(value)
            if envelope.site_id == qc_site:
                log.observe(envelope.aggregate_id, envelope.aggregate_version, envelope.hash)
        forged.append(log.seal())
    return forged


def test_checkpoints_by_a_wrong_signer_are_quarantined_and_never_used(
    tmp_path: Path, generated: GeneratedHistory
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records_of(generated.by_topic))
    coi = generated.cois[0]
    qc_site = release_stream(integrity(projection, coi))["site_id"]

    forged = forged_checkpoints(generated, qc_site)
    projection.ingest([(CHECKPOINT_TOPIC, 0, offset, v) for offset, v in enumerate(forged)])

    assert projection.untrusted_records == 2
    reasons = sorted(row.reasons for row in projection.quarantined_records())
    assert reasons == [("checkpoint_signer",), ("signature",)]
    answer = integrity(projection, coi)
    assert all(stream["checkpoint"] is None for stream in answer["streams"])
    assert answer["clean"]  # refused checkpoints name no chain


def test_a_checkpoint_whose_root_its_fold_does_not_give_is_refused_and_the_one_before_is_used(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    coi = generated.cois[0]
    stream_of_qc = decode(
        next(v for v in generated.by_topic[RELEASE] if decode(v).coi == coi)
    ).site_id
    checkpoints = list(checkpointed[CHECKPOINT_TOPIC])
    theirs = [
        i
        for i, value in enumerate(checkpoints)
        if decode(value).site_id == stream_of_qc and read_checkpoint(decode(value)).topic == RELEASE
    ]
    assert len(theirs) >= 2
    last = theirs[-1]
    signer = generated.signers[stream_of_qc]
    checkpoints[last] = resealed_checkpoint(checkpoints[last], signer, root=b"\x07" * 32)
    projection = open_projection(tmp_path / "p.sqlite", generated)

    projection.ingest(records_of({**generated.by_topic, CHECKPOINT_TOPIC: checkpoints}))

    (refused,) = projection.quarantined_records()
    assert refused.reasons == ("checkpoint_root",)
    stream = release_stream(integrity(projection, coi))
    used = stream["checkpoint"]
    assert used is not None and used["proof_verified"]
    assert used["sequence"] == decode(checkpoints[last]).aggregate_version - 1
    assert used["root"] != (b"\x07" * 32).hex()


def tampered(value: bytes, *, rehash: bool) -> bytes:
    """The envelope with its actor's printed name changed; `rehash`: its hash recomputed
    (the signature then no longer verifies), else kept (the hash no longer matches)."""
    envelope = decode(value)
    envelope.actor.printed_name = "Someone Else"
    if rehash:
        envelope.hash = envelope_hash(envelope)
    return encode(envelope)


def test_a_tampered_stored_envelope_is_named_by_the_breaks(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    coi = generated.cois[2]
    original = open_projection(tmp_path / "p.sqlite", generated)
    original.ingest(records_of(checkpointed))
    assert integrity(original, coi)["clean"]
    rows = list(original.store.rows())
    mine = [
        i for i, row in enumerate(rows) if row[0] != CHECKPOINT_TOPIC and decode(row[3]).coi == coi
    ]
    payload_changed, rehashed = mine[3], mine[-1]
    changed = {payload_changed: False, rehashed: True}
    rows = [
        (t, p, o, tampered(v, rehash=changed[i]) if i in changed else v)
        for i, (t, p, o, v) in enumerate(rows)
    ]
    store = SqliteProjectionStore(tmp_path / "tampered.sqlite")
    store.save(rows, original.offsets())  # an insider's edit of the projection's own store
    store.close()

    answer = integrity(open_projection(tmp_path / "tampered.sqlite", generated), coi)

    assert not answer["clean"]
    first, second = decode(rows[payload_changed][3]), decode(rows[rehashed][3])
    hash_break = f"hash: {first.aggregate_id} v{first.aggregate_version}: "
    signature_break = f"signature: {second.aggregate_id} v{second.aggregate_version}: "
    streams = {s["aggregate_id"]: s for s in answer["streams"]}
    assert any(b.startswith(hash_break) for b in streams[first.aggregate_id]["breaks"])
    assert any(b.startswith(signature_break) for b in streams[second.aggregate_id]["breaks"])
    assert any(b.startswith(hash_break) for b in answer["breaks"])
    assert any(b.startswith(signature_break) for b in answer["breaks"])
    rewritten = streams[second.aggregate_id]  # its head's hash is no longer the committed one
    assert rewritten["checkpoint"]["proof_verified"] is False
    assert any(b.startswith("checkpoint_head: ") for b in rewritten["breaks"])


def test_another_sites_scope_gets_not_found_exactly_like_get_chain(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records_of(checkpointed))
    coi = generated.cois[0]
    view = projection.chain(coi)
    assert view is not None
    outsider = next(s for s in ("HOSP-A", "HOSP-C") if s not in view["sites"])
    scope = Scope(outsider, frozenset({Role.COLLECTION, Role.INFUSION}))
    queries = ChainQueries(projection)

    for asked in (coi, "CHA000000000000"):
        with pytest.raises(NotFound) as chain_refused:
            queries.chain(scope, asked)
        with pytest.raises(NotFound) as integrity_refused:
            ChainIntegrity(queries).of(scope, asked)
        assert str(integrity_refused.value) == str(chain_refused.value)
    insider = Scope(view["treating_site_id"], frozenset({Role.COLLECTION, Role.INFUSION}))
    assert integrity(projection, coi, insider)["clean"]


def test_checkpoints_survive_a_restart(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    path = tmp_path / "p.sqlite"
    running = open_projection(path, generated)
    running.ingest(records_of(checkpointed))
    before = {coi: integrity(running, coi) for coi in generated.cois}
    running.close()

    restarted = open_projection(path, generated)

    for coi in generated.cois:
        after = integrity(restarted, coi)
        assert after["streams"] == before[coi]["streams"]
        assert all(s["checkpoint"]["proof_verified"] for s in after["streams"])
    assert restarted.checkpoints.taken == len(checkpointed[CHECKPOINT_TOPIC])


def test_the_audit_path_from_the_tree_levels_is_rfc_6962s() -> None:
    for size in range(1, 41):
        leaves = [bytes([size, i]) * 16 for i in range(size)]
        levels = merkle_levels(leaves)
        for index in range(size):
            assert audit_path(levels, index) == inclusion_proof(index, leaves), (size, index)


def test_each_committed_heads_proof_is_rfc_6962s_audit_path() -> None:
    for size in (1, 2, 3, 5, 8, 13, 21):
        heads = {f"stream-{size}-{i:02d}": Head(i + 1, bytes([i]) * 32) for i in range(size)}
        service = ServiceCheckpoints()
        service.tree.update(sorted(heads.items()))
        service.latest = VerifiedCheckpoint(
            "s", RELEASE, "QC-B", 1, b"", "", size, service.tree.root()
        )
        leaves = leaves_of(heads)
        for index, aggregate_id in enumerate(sorted(heads)):
            proof = service.proof(aggregate_id)
            assert proof is not None and proof.leaf_index == index
            assert proof.path == inclusion_proof(index, leaves), (size, index)


def test_a_demo_sized_chain_answers_in_milliseconds(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    projection = open_projection(tmp_path / "p.sqlite", generated)
    projection.ingest(records_of(checkpointed))
    chains = ChainIntegrity(ChainQueries(projection))
    timings = []
    for _ in range(5):
        for coi in generated.cois:
            started = time.perf_counter()
            chains.of(AUDITOR, coi)
            timings.append(time.perf_counter() - started)
    assert statistics.median(timings) < 0.25  # ~60 envelopes: ~5 ms on an idle core


def test_a_parked_checkpoint_refused_when_its_turn_came_stays_refused_after_a_restart(
    tmp_path: Path, generated: GeneratedHistory, checkpointed: dict[str, list[bytes]]
) -> None:
    by_stream: dict[str, list[bytes]] = {}
    for value in checkpointed[CHECKPOINT_TOPIC]:
        by_stream.setdefault(decode(value).aggregate_id, []).append(value)
    first, second, third = max(by_stream.values(), key=len)[:3]
    checkpoint = read_checkpoint(decode(third))
    site = decode(third).site_id
    wrong_root = resealed_checkpoint(third, generated.signers[site], root=b"\x07" * 32)
    path = tmp_path / "p.sqlite"
    projection = open_projection(path, generated)
    projection.ingest(records_of(generated.by_topic))

    for offset, value in enumerate((wrong_root, first, second)):  # the third arrives first
        projection.ingest([(CHECKPOINT_TOPIC, 0, offset, value)])

    (refused,) = projection.quarantined_records()
    assert (refused.reasons, refused.location.offset) == (("checkpoint_root",), 0)
    latest = projection.checkpoints.latest(checkpoint.topic, site)
    assert latest is not None and latest.sequence == 2
    projection.close()
    restarted = open_projection(path, generated)
    latest = restarted.checkpoints.latest(checkpoint.topic, site)
    assert latest is not None and latest.sequence == 2
