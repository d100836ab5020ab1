"""Signatures covered by checkpoints (issue 15 item 5): `verify_history` by default
(`check_every_signature=False`, `v2v audit verify`) skips the Ed25519 check of an event whose
stream's hash chain reaches a head committed by a verified checkpoint together with the digest
of the stream's signatures, and checks every other event's signature.

The break sets are compared with the per-event verifier's (`check_every_signature=True`) on
the tamper suite's own 1,000 seeded mutations (test_audit_tamper.py), with and without
checkpoints: they are equal, including a history whose only damage is the signature bytes of
an event a checkpoint covers (content intact): the committed signature digest no longer
matches, so that stream's signatures are checked one by one.
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.codec import decode, encode, envelope_hash, event_id_for, seal
from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Break, Location
from v2v_projection.audit.cli import app
from v2v_projection.audit.verification import VerifyOutcome, verify_history
from v2v_projection.chain.identity import BINDERS
from v2v_projection.history_file import HistoryHeader, HistoryRecord, write_history
from v2v_testkit.audit import partitioned, write_key_ring
from v2v_testkit.checkpointed import is_checkpoint, with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

# The tamper suite's mutations, world and memo ring, exactly as it runs them (a test module
# in this directory: pytest's default import mode puts the directory on sys.path).
tamper: Any = importlib.import_module("test_audit_tamper")

CHECKPOINT_KINDS = frozenset({"drop_checkpoint", "forged_checkpoint", "rollback"})
PLAIN_MUTATIONS = 400


def _world(checkpoints: bool) -> Any:
    generated = generate_history(tamper.SEED, tamper.PATIENTS)
    by_topic = generated.by_topic
    if checkpoints:
        by_topic = with_checkpoints(by_topic, generated.signers)
    header, records = partitioned(by_topic, tamper.PARTITIONS)
    rogues = {site: tamper._rogue(site) for site in generated.signers}
    return tamper.World(generated, header, records, rogues)


def _both(
    header: HistoryHeader,
    records: list[HistoryRecord],
    ring: KeyRing,
    external: list[bytes] | None = None,
) -> tuple[VerifyOutcome, VerifyOutcome]:
    every = verify_history(
        header, records, ring, external_checkpoints=external, check_every_signature=True
    )
    skipping = verify_history(
        header, records, ring, external_checkpoints=external, check_every_signature=False
    )
    return every, skipping


def _signature_only(found: Break, records: list[HistoryRecord], skipping: VerifyOutcome) -> bool:
    """A signature break on a record whose content is intact (its hash recomputes) and whose
    stream has no break at all when covered signatures are skipped."""
    if found.check != "signature":
        return False
    location = found.location
    record = next(
        r
        for r in records
        if (r.topic, r.partition, r.offset) == (location.topic, location.partition, location.offset)
    )
    envelope = decode(record.value)
    named = {b.aggregate_id for b in skipping.breaks}
    return envelope_hash(envelope) == envelope.hash and envelope.aggregate_id not in named


def test_an_untouched_history_with_checkpoints_needs_only_the_checkpoints_signatures() -> None:
    world = _world(checkpoints=True)
    every, skipping = _both(world.header, world.records, world.generated.keys)
    checkpoints = len(world.checkpoints)
    events = len(world.records) - checkpoints
    assert every.breaks == skipping.breaks == []
    assert (every.signatures_checked, every.covered_by_checkpoints) == (len(world.records), 0)
    assert (skipping.signatures_checked, skipping.covered_by_checkpoints) == (checkpoints, events)
    assert skipping.summary().endswith(
        f"0 breaks; {checkpoints} signatures checked, {events} events covered by checkpoints"
    )


def test_without_checkpoints_every_signature_is_checked_either_way() -> None:
    world = _world(checkpoints=False)
    every, skipping = _both(world.header, world.records, world.generated.keys)
    assert every.breaks == skipping.breaks == []
    assert skipping.signatures_checked == every.signatures_checked == len(world.records)
    assert skipping.covered_by_checkpoints == 0


def _appended(world: Any, forged: bool) -> tuple[HistoryHeader, list[HistoryRecord], int]:
    """The history plus the next version of its longest stream, after every checkpoint,
    sealed by the stream's site (its signature made by a rogue key, key id kept, when
    `forged`); the new record's offset."""
    records: list[HistoryRecord] = list(world.records)
    events = [(r, decode(r.value)) for r in records if not is_checkpoint(r)]
    lengths = Counter(e.aggregate_id for _, e in events)
    stream = max(sorted(lengths), key=lambda s: lengths[s])
    record, latest = max(
        ((r, e) for r, e in events if e.aggregate_id == stream),
        key=lambda p: p[1].aggregate_version,
    )
    following = Envelope()
    following.CopyFrom(latest)
    following.aggregate_version = latest.aggregate_version + 1
    following.event_id = event_id_for(following.aggregate_id, following.aggregate_version)
    following.reason = "correction"
    sealed = seal(following, latest.hash, world.generated.signers[latest.site_id])
    if forged:
        sealed.signature = world.rogues[latest.site_id].sign(sealed.hash)
    extents = list(world.header.extents)
    at = next(
        i
        for i, e in enumerate(extents)
        if (e.topic, e.partition) == (record.topic, record.partition)
    )
    offset = extents[at].end
    extents[at] = replace(extents[at], end=offset + 1)
    added = HistoryRecord(record.topic, record.partition, offset, encode(sealed))
    return replace(world.header, extents=extents), [*records, added], offset


def test_an_event_after_the_latest_checkpoint_keeps_its_own_signature_check() -> None:
    world = _world(checkpoints=True)
    checkpoints = len(world.checkpoints)
    events = len(world.records) - checkpoints
    for forged, expected in ((False, []), (True, ["signature"])):
        header, records, offset = _appended(world, forged)
        every, skipping = _both(header, records, world.generated.keys)
        assert Counter(skipping.breaks) == Counter(every.breaks)
        assert [(b.check, b.location.offset) for b in skipping.breaks] == [
            (check, offset) for check in expected
        ]
        assert (skipping.signatures_checked, skipping.covered_by_checkpoints) == (
            checkpoints + 1,
            events,
        )


def _compare(world: Any, kinds: list[str], count: int) -> tuple[Counter[str], list[str]]:
    """The tamper suite's seeded mutations (its loop, its RNG) verified both ways: the breaks
    skipping covered signatures must be the per-event verifier's. Returns the signature
    breaks of covered events with intact content that skipping missed, per kind, and every
    other difference."""
    rng = random.Random(tamper.SEED)
    ring = tamper.MemoKeyRing(world.generated.keys)
    signature_only: Counter[str] = Counter()
    differences: list[str] = []
    for number in range(count):
        kind = rng.choice(kinds)
        copy = world.fresh()
        tamper.MUTATIONS_BY_KIND[kind](world, copy, rng)
        external = world.checkpoints if kind in tamper.EXTERNAL_KINDS else None
        every, skipping = _both(copy.header, copy.records, ring, external)
        missing = Counter(every.breaks) - Counter(skipping.breaks)
        extra = Counter(skipping.breaks) - Counter(every.breaks)
        if extra or not all(_signature_only(b, copy.records, skipping) for b in missing):
            differences.append(f"mutation {number} ({kind}): missing {missing}, extra {extra}")
        elif missing:
            signature_only[kind] += 1
    return signature_only, differences


def test_the_tamper_suites_mutations_give_the_per_event_verifiers_breaks() -> None:
    world = _world(checkpoints=True)
    signature_only, differences = _compare(
        world, sorted(tamper.MUTATIONS_BY_KIND), tamper.MUTATIONS
    )
    print(f"\nsignature-only damage of checkpoint-covered events missed: {dict(signature_only)}")
    assert differences == []
    # Issue 15: checkpoints commit each stream's signatures too, so no kind is missed (a
    # flipped signature byte of a covered event included; 11 byte flips were before).
    assert not signature_only


def test_without_checkpoints_the_mutations_give_exactly_the_same_breaks() -> None:
    world = _world(checkpoints=False)
    # Kinds that need checkpoints (or a checkpoint stream to swap) are left out.
    kinds = sorted(set(tamper.MUTATIONS_BY_KIND) - CHECKPOINT_KINDS - {"swap_renumbered"})
    signature_only, differences = _compare(world, kinds, PLAIN_MUTATIONS)
    assert differences == []
    assert not signature_only


def _covered_event(world: Any) -> int:
    """The index of the first event record a checkpoint covers."""
    return next(i for i, r in enumerate(world.records) if not is_checkpoint(r))


def test_a_damaged_signature_of_a_covered_event_is_a_break_by_default() -> None:
    """Only the signature bytes of an event the checkpoints cover are damaged (content and
    hash intact): the committed signature digest does not match, so the stream's signatures
    are checked one by one and the damaged one is the break the per-event verifier gives."""
    world = _world(checkpoints=True)
    records: list[HistoryRecord] = list(world.records)
    index = _covered_event(world)
    envelope = decode(records[index].value)
    signature = bytearray(envelope.signature)
    signature[5] ^= 0x01
    envelope.signature = bytes(signature)
    records[index] = replace(records[index], value=encode(envelope))
    every, skipping = _both(world.header, records, world.generated.keys)
    default = verify_history(world.header, records, world.generated.keys)
    location = (records[index].topic, records[index].partition, records[index].offset)
    assert [(b.check, b.location) for b in every.breaks] == [("signature", Location(*location))]
    assert Counter(skipping.breaks) == Counter(every.breaks)
    assert Counter(default.breaks) == Counter(every.breaks)
    stream = envelope.aggregate_id
    stream_events = sum(
        1 for r in records if not is_checkpoint(r) and decode(r.value).aggregate_id == stream
    )
    checkpoints = len(world.checkpoints)
    assert skipping.signatures_checked == checkpoints + stream_events
    assert skipping.covered_by_checkpoints == len(records) - checkpoints - stream_events


def test_heads_without_a_signature_digest_cover_no_signature() -> None:
    """Checkpoints from relays that did not keep the digest (heads stored before it): the
    history is clean and every event's signature is checked."""
    generated = generate_history(tamper.SEED, tamper.PATIENTS)
    by_topic = with_checkpoints(generated.by_topic, generated.signers, signatures=False)
    header, records = partitioned(by_topic, tamper.PARTITIONS)
    outcome = verify_history(header, records, generated.keys)
    assert outcome.breaks == []
    assert (outcome.signatures_checked, outcome.covered_by_checkpoints) == (len(records), 0)


def test_verify_cli_skips_covered_signatures_on_request(tmp_path: Path) -> None:
    generated: GeneratedHistory = generate_history(tamper.SEED, 2)
    header, records = partitioned(with_checkpoints(generated.by_topic, generated.signers))
    write_history(tmp_path / "history.v2v", header, records)
    keys = write_key_ring(tmp_path / "pki", generated.keys)
    checkpoints = sum(1 for r in records if is_checkpoint(r))
    events = len(records) - checkpoints
    base = ["verify", "--file", str(tmp_path / "history.v2v"), "--keys", str(keys)]
    env = {"COLUMNS": "240", "V2V_KAFKA_BOOTSTRAP": None, "V2V_PKI_DIR": None}
    for flags, checked, covered in (
        ([], checkpoints, events),
        (["--check-every-signature"], len(records), 0),
        (["--skip-covered-signatures"], checkpoints, events),
    ):
        result = CliRunner().invoke(app, [*base, *flags], env=env)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith(
            f"0 breaks; {checked} signatures checked, {covered} events covered by checkpoints"
        )


def test_a_forged_event_binds_no_din_when_its_deferred_signature_fails() -> None:
    """A fact binding another chain's DIN, appended after the checkpoints to a stream of the
    same site on the same topic, with a forged signature (real key id): checked one by one,
    only the signature break; its DIN binds nothing (no identity break), as when checked as
    read."""
    world = _world(checkpoints=True)
    records: list[HistoryRecord] = list(world.records)
    events = [(r, decode(r.value)) for r in records if not is_checkpoint(r)]
    latest: dict[str, tuple[HistoryRecord, Envelope]] = {}
    for record, envelope in events:
        latest[envelope.aggregate_id] = (record, envelope)
    binder_record, binder = next((r, e) for r, e in events if e.event_type in BINDERS)
    record, target = next(
        (r, e)
        for r, e in latest.values()
        if r.topic == binder_record.topic and e.site_id == binder.site_id and e.coi != binder.coi
    )
    forged = Envelope()
    forged.CopyFrom(binder)
    forged.aggregate_type = target.aggregate_type
    forged.aggregate_id = target.aggregate_id
    forged.coi = target.coi
    forged.aggregate_version = target.aggregate_version + 1
    forged.event_id = event_id_for(forged.aggregate_id, forged.aggregate_version)
    sealed = seal(forged, target.hash, world.generated.signers[binder.site_id])
    sealed.signature = world.rogues[binder.site_id].sign(sealed.hash)
    extents = list(world.header.extents)
    at = next(
        i
        for i, e in enumerate(extents)
        if (e.topic, e.partition) == (record.topic, record.partition)
    )
    offset = extents[at].end
    extents[at] = replace(extents[at], end=offset + 1)
    records.append(HistoryRecord(record.topic, record.partition, offset, encode(sealed)))
    every, skipping = _both(replace(world.header, extents=extents), records, world.generated.keys)
    assert [(b.check, b.location.offset) for b in every.breaks] == [("signature", offset)]
    assert Counter(skipping.breaks) == Counter(every.breaks)
