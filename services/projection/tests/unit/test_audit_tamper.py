"""Tamper test: 1,000 seeded random mutations of an exported history, every one detected.

The history is a generated consortium history laid out as Kafka holds it (3 partitions per
topic, keyed by COI). Each mutation is applied to a fresh copy and verified in process with
the same core as `v2v audit verify --file`.

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
Not detectable by design (said in the report): a redelivered duplicate with rewritten
offsets (at-least-once delivery makes it legitimate) and two different streams' events
swapped with rewritten offsets (streams are chained, not the partition).
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
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

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
}


def _rogue(site: str) -> SiteSigningKey:
    return SiteSigningKey.from_seed(site, hashlib.sha256(f"rogue {site}".encode()).digest())


@pytest.fixture(scope="module")
def world() -> World:
    generated = generate_history(SEED, PATIENTS)
    header, records = partitioned(generated.by_topic, PARTITIONS)
    rogues = {site: _rogue(site) for site in generated.signers}
    return World(generated, header, records, rogues)


def test_the_untouched_export_verifies_clean(world: World, tmp_path: Path) -> None:
    path = tmp_path / "history.v2v"
    write_history(path, world.header, world.records)
    header, records = read_history(path)
    outcome = verify_history(header, records, world.generated.keys)
    assert outcome.breaks == []
    assert outcome.records == len(world.records) > 100
    assert outcome.aggregates >= PATIENTS


def test_every_one_of_1000_random_mutations_is_detected(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(SEED)
    ring = MemoKeyRing(world.generated.keys)
    kinds: Counter[str] = Counter()
    detections: Counter[tuple[str, str]] = Counter()
    undetected: list[str] = []
    for number in range(MUTATIONS):
        kind = rng.choice(sorted(MUTATIONS_BY_KIND))
        copy = world.fresh()
        MUTATIONS_BY_KIND[kind](world, copy, rng)
        breaks = verify_history(copy.header, copy.records, ring).breaks
        kinds[kind] += 1
        detections.update((kind, check) for check in {b.check for b in breaks})
        if not breaks:
            undetected.append(f"mutation {number} ({kind})")
    with capsys.disabled():
        print(_table(kinds, detections))
    assert undetected == []
    assert set(kinds) == set(MUTATIONS_BY_KIND)


def _table(kinds: Counter[str], detections: Counter[tuple[str, str]]) -> str:
    lines = [f"\n{'mutation':<20} {'count':>5}  detected by (mutations per check)"]
    for kind, count in sorted(kinds.items()):
        checks = ", ".join(
            f"{check} {n}" for (k, check), n in sorted(detections.items()) if k == kind
        )
        lines.append(f"{kind:<20} {count:>5}  {checks}")
    lines.append(f"{'total':<20} {sum(kinds.values()):>5}")
    return "\n".join(lines)
