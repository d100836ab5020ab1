"""Tamper test: 1,000 seeded random mutations of an exported history, every one detected.

The history is a generated consortium history laid out as Kafka holds it (3 partitions per
topic, keyed by COI), with the services' signed checkpoints on `v2v.checkpoints.v1` (keyed by
site; each service checkpoints every 7 of its events and once more at the end, as on
shutdown). Each mutation is applied to a fresh copy and verified in process with the same
core as `v2v audit verify --file`; the auditor also holds an external copy of the
checkpoints (`v2v audit checkpoints pull`), used for the kinds only it can catch.

What an attacker without the consortium's private keys could do to an export, and what
catches it:
- flip a byte of a record's value -> decode / encoding / hash / signature / event id;
- delete a record -> offset continuity (and version gaps);
- reorder: swap two records of a partition -> offsets; swap two versions of one stream and
  rewrite the offsets so they stay contiguous -> version gap / prev_hash;
- insert a copy of a record (with its label) -> offsets; a copy moved into another
  partition with offsets rewritten -> partition (the COI keys the partition); a forged
  envelope, correctly chained, signed by a key outside the ring, offsets rewritten ->
  signature;
- re-sign a record (content changed, hash recomputed) with a key not in the ring, with its
  site's key id but another key, or with another site's ring key -> signature / signer site.
What an insider could do (issue 15):
- careful truncation: delete a stream's last event, renumber the later offsets and the
  extent -> checkpoint_head (the checkpoint committed the deleted version);
- impostor: re-author a stream's last event as another site, re-signed with that site's
  real key -> stream_author (the first event pins the author) or, for a one-event stream,
  checkpoint_head (rewritten);
- offset-renumbered swaps: two records of different partitions trade places (topic,
  partition and offset) -> partition; a stream's last two versions trade places -> prev_hash;
- dropped checkpoints (renumbered) -> version gap / prev_hash, and the last one of a
  service against the external copy;
- forged checkpoints: re-signed with a rogue key -> signature; a lie about the root
  re-signed with the site's real key -> checkpoint_root;
- a history rolled back to an earlier checkpoint of a service (its later events and
  checkpoints deleted, offsets renumbered), its checkpoints dropped or rewritten (a new one
  signed by that site) -> consistent on its own; external_checkpoint against the copy.
Not detectable by design (said in the report): a redelivered duplicate with rewritten
offsets (at-least-once delivery makes it legitimate), two different streams' events
swapped with rewritten offsets (streams are chained, not the partition), and events after
the latest checkpoint of their service deleted with their checkpoint-free tail (nothing
committed them yet: here every service checkpoints at the end).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.auth.identity import Role
from v2v_platform.envelope.codec import decode, encode, envelope_hash, event_id_for, seal
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_projection.audit.sources import partition_for
from v2v_projection.audit.verification import verify_history
from v2v_projection.history_file import HistoryHeader, HistoryRecord, read_history, write_history
from v2v_testkit.audit import partitioned
from v2v_testkit.checkpointed import (
    is_checkpoint,
    reauthored,
    remove_renumbered,
    resealed_checkpoint,
    rolled_back,
    with_checkpoints,
)
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.consortium import SITE_ROLES

SEED = 61_000
PATIENTS = 6
PARTITIONS = 3
MUTATIONS = 1000


class MemoKeyRing(KeyRing):
    """The consortium ring, remembering each (key, digest, signature) verdict: the 1,000
    copies share almost all their records, and Ed25519 verification dominates the time."""

    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self._ring = ring
        self._verdicts: dict[tuple[str, bytes, bytes], bool] = {}

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._ring

    def roles_of(self, site_id: str) -> frozenset[Role]:
        return self._ring.roles_of(site_id)

    def verify(self, key_id: str, digest: bytes, signature: bytes) -> bool:
        question = (key_id, digest, signature)
        if question not in self._verdicts:
            self._verdicts[question] = self._ring.verify(key_id, digest, signature)
        return self._verdicts[question]


@dataclass
class Copy:
    """A fresh copy of the export to mutate: header extents and records (in file order)."""

    header: HistoryHeader
    records: list[HistoryRecord]

    def positions(self, topic: str, partition: int) -> list[int]:
        return [
            i for i, r in enumerate(self.records) if (r.topic, r.partition) == (topic, partition)
        ]

    def insert_renumbered(self, record: HistoryRecord, rng: random.Random) -> None:
        """Insert into its partition at a random place; later offsets and the extent shift."""
        positions = self.positions(record.topic, record.partition)
        index = rng.randint(0, len(positions))
        extent_index = next(
            i
            for i, e in enumerate(self.header.extents)
            if (e.topic, e.partition) == (record.topic, record.partition)
        )
        extent = self.header.extents[extent_index]
        at = positions[index] if index < len(positions) else _after(positions, self.records)
        offset = extent.start + index
        for i in positions[index:]:
            self.records[i] = replace(self.records[i], offset=self.records[i].offset + 1)
        self.records.insert(at, replace(record, offset=offset))
        self.header.extents[extent_index] = replace(extent, end=extent.end + 1)


def _after(positions: list[int], records: list[HistoryRecord]) -> int:
    return positions[-1] + 1 if positions else len(records)


@dataclass(frozen=True)
class World:
    generated: GeneratedHistory
    header: HistoryHeader
    records: list[HistoryRecord]
    rogues: dict[str, SiteSigningKey]

    @property
    def checkpoints(self) -> list[bytes]:
        """The auditor's external copy (`v2v audit checkpoints pull`)."""
        return [r.value for r in self.records if is_checkpoint(r)]

    def fresh(self) -> Copy:
        return Copy(replace(self.header, extents=list(self.header.extents)), list(self.records))


Mutation = Callable[[World, Copy, random.Random], None]


def _pick(rng: random.Random, copy: Copy) -> int:
    return rng.randrange(len(copy.records))


def byte_flip(world: World, copy: Copy, rng: random.Random) -> None:
    index = _pick(rng, copy)
    value = bytearray(copy.records[index].value)
    value[rng.randrange(len(value))] ^= rng.randrange(1, 256)
    copy.records[index] = replace(copy.records[index], value=bytes(value))


def delete(world: World, copy: Copy, rng: random.Random) -> None:
    del copy.records[_pick(rng, copy)]


def reorder(world: World, copy: Copy, rng: random.Random) -> None:
    extent = rng.choice([e for e in copy.header.extents if e.end - e.start >= 2])
    first, second = rng.sample(copy.positions(extent.topic, extent.partition), 2)
    records = copy.records
    records[first], records[second] = records[second], records[first]


def reorder_relabelled(world: World, copy: Copy, rng: random.Random) -> None:
    by_stream: dict[str, list[int]] = {}
    for i, record in enumerate(copy.records):
        by_stream.setdefault(decode(record.value).aggregate_id, []).append(i)
    first, second = rng.sample(rng.choice([p for p in by_stream.values() if len(p) >= 2]), 2)
    records = copy.records
    a, b = records[first], records[second]
    records[first], records[second] = replace(a, value=b.value), replace(b, value=a.value)


def insert_copy(world: World, copy: Copy, rng: random.Random) -> None:
    copy.records.insert(rng.randint(0, len(copy.records)), copy.records[_pick(rng, copy)])


def insert_copy_moved(world: World, copy: Copy, rng: random.Random) -> None:
    record = copy.records[_pick(rng, copy)]
    other = rng.choice([p for p in range(PARTITIONS) if p != record.partition])
    copy.insert_renumbered(replace(record, partition=other), rng)


def insert_forged(world: World, copy: Copy, rng: random.Random) -> None:
    """The next version of a real stream, correctly chained, signed by a rogue key."""
    model_record = copy.records[_pick(rng, copy)]
    model = decode(model_record.value)
    latest = max(
        (decode(r.value) for r in copy.records),
        key=lambda e: (e.aggregate_id == model.aggregate_id, e.aggregate_version),
    )
    forged = Envelope()
    forged.CopyFrom(latest)
    forged.aggregate_version = latest.aggregate_version + 1
    forged.event_id = event_id_for(forged.aggregate_id, forged.aggregate_version)
    forged.reason = "correction"
    sealed = seal(forged, latest.hash, world.rogues[forged.site_id])
    partition = partition_for(sealed.coi, PARTITIONS)
    copy.insert_renumbered(HistoryRecord(model_record.topic, partition, 0, encode(sealed)), rng)


def _altered(copy: Copy, rng: random.Random) -> tuple[int, Envelope]:
    index = _pick(rng, copy)
    envelope = decode(copy.records[index].value)
    envelope.reason = f"amended {rng.randrange(10**6)}"
    return index, envelope


def resign_unknown_key(world: World, copy: Copy, rng: random.Random) -> None:
    index, envelope = _altered(copy, rng)
    sealed = seal(envelope, envelope.prev_hash, world.rogues[envelope.site_id])
    copy.records[index] = replace(copy.records[index], value=encode(sealed))


def resign_as_the_site(world: World, copy: Copy, rng: random.Random) -> None:
    """Keeps the site's real key id, signs with a rogue key: the hash is valid, not the sig."""
    index, envelope = _altered(copy, rng)
    envelope.hash = envelope_hash(envelope)
    envelope.signature = world.rogues[envelope.site_id].sign(envelope.hash)
    copy.records[index] = replace(copy.records[index], value=encode(envelope))


def resign_other_site(world: World, copy: Copy, rng: random.Random) -> None:
    index, envelope = _altered(copy, rng)
    other = rng.choice(
        [s for site, s in world.generated.signers.items() if site != envelope.site_id]
    )
    envelope.signing_key_id = other.key_id
    envelope.hash = envelope_hash(envelope)
    envelope.signature = other.sign(envelope.hash)
    copy.records[index] = replace(copy.records[index], value=encode(envelope))


def _streams(copy: Copy, checkpoints: bool = False) -> dict[str, list[int]]:
    """Each stream's record indexes in file order (event streams, or checkpoint streams)."""
    by_stream: dict[str, list[int]] = {}
    for i, record in enumerate(copy.records):
        if is_checkpoint(record) == checkpoints:
            by_stream.setdefault(decode(record.value).aggregate_id, []).append(i)
    return by_stream


def _remove(copy: Copy, index: int) -> None:
    copy.header, copy.records = remove_renumbered(copy.header, copy.records, {index})


def careful_truncation(world: World, copy: Copy, rng: random.Random) -> None:
    _remove(copy, rng.choice(sorted(_streams(copy).values()))[-1])


def impostor(world: World, copy: Copy, rng: random.Random) -> None:
    """A stream's last event re-authored as a site with the same roles (any other site when
    none has), re-signed with that site's real key."""
    index = rng.choice(sorted(_streams(copy).values()))[-1]
    site = decode(copy.records[index].value).site_id
    others = [s for s in sorted(world.generated.signers) if s != site]
    peers = [s for s in others if SITE_ROLES[s] == SITE_ROLES[site]] or others
    signer = world.generated.signers[rng.choice(peers)]
    value = reauthored(copy.records[index].value, signer)
    copy.records[index] = replace(copy.records[index], value=value)


def swap_renumbered(world: World, copy: Copy, rng: random.Random) -> None:
    """Two records trade places with offsets kept contiguous: across two partitions of one
    topic, or a stream's last two versions."""
    records = copy.records
    if rng.random() < 0.5:
        topic = rng.choice(sorted({r.topic for r in records}))
        first = rng.choice([i for i, r in enumerate(records) if r.topic == topic])
        second = rng.choice(
            [
                i
                for i, r in enumerate(records)
                if r.topic == topic and r.partition != records[first].partition
            ]
        )
    else:
        tails = [p for p in _streams(copy, checkpoints=rng.random() < 0.2).values() if len(p) > 1]
        first, second = rng.choice(sorted(tails))[-2:]
    a, b = records[first], records[second]
    records[first], records[second] = replace(a, value=b.value), replace(b, value=a.value)


def drop_checkpoint(world: World, copy: Copy, rng: random.Random) -> None:
    positions = [i for i, r in enumerate(copy.records) if is_checkpoint(r)]
    _remove(copy, rng.choice(positions))


def _checkpoint(copy: Copy, rng: random.Random) -> int:
    return rng.choice([i for i, r in enumerate(copy.records) if is_checkpoint(r)])


def forged_checkpoint(world: World, copy: Copy, rng: random.Random) -> None:
    """A checkpoint whose root (or tree size) is changed: re-signed with a rogue key of its
    site, or a lie re-signed with the site's real key."""
    index = _checkpoint(copy, rng)
    site = decode(copy.records[index].value).site_id
    real = rng.random() < 0.5
    signer = world.generated.signers[site] if real else world.rogues[site]
    change: dict[str, object] = (
        {"root": rng.randbytes(32)} if rng.random() < 0.8 else {"tree_size": rng.randrange(10**4)}
    )
    value = resealed_checkpoint(copy.records[index].value, signer, **change)
    copy.records[index] = replace(copy.records[index], value=value)


def rollback(world: World, copy: Copy, rng: random.Random) -> None:
    """One service rolled back to an earlier checkpoint, its later checkpoints dropped or
    rewritten by that site (caught against the external copy only)."""
    streams = {s: p for s, p in _streams(copy, checkpoints=True).items() if len(p) >= 2}
    stream = rng.choice(sorted(streams))
    keep = rng.randrange(1, len(streams[stream]))
    site = decode(copy.records[streams[stream][0]].value).site_id
    signer = world.generated.signers[site] if rng.random() < 0.5 else None
    copy.header, copy.records = rolled_back(copy.header, copy.records, stream, keep, rewrite=signer)


EXTERNAL_KINDS = frozenset({"drop_checkpoint", "rollback"})
"""Kinds verified with the auditor's external copy of the checkpoints (a service's last
checkpoint dropped, or a rollback, leaves a history consistent on its own)."""

MUTATIONS_BY_KIND: dict[str, Mutation] = {
    "byte_flip": byte_flip,
    "delete": delete,
    "reorder": reorder,
    "reorder_relabelled": reorder_relabelled,
    "insert_copy": insert_copy,
    "insert_copy_moved": insert_copy_moved,
    "insert_forged": insert_forged,
    "resign_unknown_key": resign_unknown_key,
    "resign_as_the_site": resign_as_the_site,
    "resign_other_site": resign_other_site,
    "careful_truncation": careful_truncation,
    "impostor": impostor,
    "swap_renumbered": swap_renumbered,
    "drop_checkpoint": drop_checkpoint,
    "forged_checkpoint": forged_checkpoint,
    "rollback": rollback,
}


def _rogue(site: str) -> SiteSigningKey:
    return SiteSigningKey.from_seed(site, hashlib.sha256(f"rogue {site}".encode()).digest())


@pytest.fixture(scope="module")
def world() -> World:
    generated = generate_history(SEED, PATIENTS)
    by_topic = with_checkpoints(generated.by_topic, generated.signers)
    header, records = partitioned(by_topic, PARTITIONS)
    rogues = {site: _rogue(site) for site in generated.signers}
    return World(generated, header, records, rogues)


def test_the_untouched_export_verifies_clean(world: World, tmp_path: Path) -> None:
    path = tmp_path / "history.v2v"
    write_history(path, world.header, world.records)
    header, records = read_history(path)
    outcome = verify_history(header, list(records), world.generated.keys)
    assert outcome.breaks == []
    assert outcome.records == len(world.records) > 100
    assert outcome.aggregates >= PATIENTS
    assert outcome.checkpoints == len(world.checkpoints) > 20
    _, records = read_history(path)
    against_copy = verify_history(
        header, records, world.generated.keys, external_checkpoints=world.checkpoints
    )
    assert against_copy.breaks == []


def test_every_one_of_1000_random_mutations_is_detected(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    ring = MemoKeyRing(world.generated.keys)
    kinds: Counter[str] = Counter()
    detected: Counter[str] = Counter()
    detections: Counter[tuple[str, str]] = Counter()
    undetected: list[str] = []
    for number in range(MUTATIONS):
        kind = rng.choice(sorted(MUTATIONS_BY_KIND))
        copy = world.fresh()
        MUTATIONS_BY_KIND[kind](world, copy, rng)
        external = world.checkpoints if kind in EXTERNAL_KINDS else None
        breaks = verify_history(
            copy.header, copy.records, ring, external_checkpoints=external
        ).breaks
        kinds[kind] += 1
        detections.update((kind, check) for check in {b.check for b in breaks})
        if breaks:
            detected[kind] += 1
        else:
            undetected.append(f"mutation {number} ({kind})")
    with capsys.disabled():
        print(_table(kinds, detected, detections))
    assert undetected == []
    assert set(kinds) == set(MUTATIONS_BY_KIND)


def _table(
    kinds: Counter[str], detected: Counter[str], detections: Counter[tuple[str, str]]
) -> str:
    lines = [f"\n{'mutation':<20} {'tried':>5} {'detected':>8}  detected by (mutations per check)"]
    for kind, count in sorted(kinds.items()):
        checks = ", ".join(
            f"{check} {n}" for (k, check), n in sorted(detections.items()) if k == kind
        )
        external = " (with the external copy)" if kind in EXTERNAL_KINDS else ""
        lines.append(f"{kind:<20} {count:>5} {detected[kind]:>8}  {checks}{external}")
    lines.append(f"{'total':<20} {sum(kinds.values()):>5} {sum(detected.values()):>8}")
    return "\n".join(lines)
