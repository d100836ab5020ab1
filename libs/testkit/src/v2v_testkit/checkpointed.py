"""Histories with signed checkpoints (issue 15), as the relays would publish them: for every
service (topic + author site), a checkpoint every `every` of its events and one at the end
(the relay's checkpoint on shutdown), built with `next_checkpoint` and signed with the site's
key. The result is a `by_topic` mapping with `CHECKPOINT_TOPIC` added, ready for
`v2v_testkit.audit.partitioned` (which keys checkpoint records by site id)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from v2v_platform.checkpoints.envelopes import (
    CHECKPOINT_TOPIC,
    CheckpointHead,
    fold_heads,
    next_checkpoint,
    read_checkpoint,
)
from v2v_platform.checkpoints.merkle import Head, signature_digest
from v2v_platform.envelope.codec import Actor, decode, encode, envelope_hash, seal
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_projection.history_file import HistoryHeader, HistoryRecord

RELAY_ACTOR = Actor("relay", "Outbox relay", "system")
CHECKPOINTS_AT = datetime.fromisoformat("2025-06-01T00:00:00+00:00")


class CheckpointLog:
    """The checkpoint stream of one service: its committed heads and latest checkpoint."""

    def __init__(self, topic: str, signer: SiteSigningKey) -> None:
        self.topic = topic
        self.signer = signer
        self.committed: dict[str, Head] = {}
        self.changed: dict[str, Head] = {}
        self.signatures: dict[str, bytes] = {}
        self.previous = CheckpointHead()
        self.position = 0

    def observe(
        self, aggregate_id: str, version: int, digest: bytes, signature: bytes | None = None
    ) -> None:
        """The stream's next version; with its `signature`, the head also carries the stream's
        signature digest (as the relay keeps it), else none (a relay state older than that)."""
        signatures = b""
        if signature is not None:
            signatures = signature_digest(self.signatures.get(aggregate_id, b""), signature)
            self.signatures[aggregate_id] = signatures
        self.changed[aggregate_id] = Head(version, digest, signatures)
        self.position += 1

    def seal(self) -> bytes:
        envelope, self.committed = next_checkpoint(
            topic=self.topic,
            committed=self.committed,
            changed=self.changed,
            previous=self.previous,
            position=self.position,
            signer=self.signer,
            actor=RELAY_ACTOR,
            at=CHECKPOINTS_AT + timedelta(minutes=self.previous.sequence + 1),
        )
        self.changed = {}
        self.previous = CheckpointHead(envelope.aggregate_version, envelope.hash)
        return encode(envelope)


def with_checkpoints(
    by_topic: Mapping[str, Sequence[bytes]],
    signers: Mapping[str, SiteSigningKey],
    every: int = 7,
    *,
    signatures: bool = True,
) -> dict[str, list[bytes]]:
    """`by_topic` plus the checkpoints of every service on `CHECKPOINT_TOPIC`, in the order
    the relays would have published them (topic by topic, each service's checkpoint after
    every `every` of its events, and a last one covering its remaining events). Each head
    carries its stream's signature digest, unless `signatures=False` (relays that did not
    keep it: empty digests)."""
    result = {topic: list(values) for topic, values in by_topic.items()}
    checkpoints: list[bytes] = []
    for topic in sorted(by_topic):
        logs: dict[str, CheckpointLog] = {}
        for value in by_topic[topic]:
            envelope = decode(value)
            site = envelope.site_id
            log = logs.get(site)
            if log is None:
                log = logs[site] = CheckpointLog(topic, signers[site])
            log.observe(
                envelope.aggregate_id,
                envelope.aggregate_version,
                envelope.hash,
                envelope.signature if signatures else None,
            )
            if log.position % every == 0:
                checkpoints.append(log.seal())
        checkpoints += [log.seal() for _, log in sorted(logs.items()) if log.changed]
    result[CHECKPOINT_TOPIC] = checkpoints
    return result


# What an insider with write access to an export may do to it (issue 15), each keeping the
# offsets contiguous and the extents exact, so only the checks that look at content can tell.


def remove_renumbered(
    header: HistoryHeader, records: Sequence[HistoryRecord], doomed: Collection[int]
) -> tuple[HistoryHeader, list[HistoryRecord]]:
    """`records` without the indexes in `doomed`; each partition's later offsets move down
    and its extent shrinks by the records removed from it ("careful" deletion)."""
    removed: Counter[tuple[str, int]] = Counter()
    kept: list[HistoryRecord] = []
    for index, record in enumerate(records):
        key = (record.topic, record.partition)
        if index in doomed:
            removed[key] += 1
        else:
            kept.append(replace(record, offset=record.offset - removed[key]))
    extents = [replace(e, end=e.end - removed[(e.topic, e.partition)]) for e in header.extents]
    return replace(header, extents=extents), kept


def reauthored(value: bytes, signer: SiteSigningKey) -> bytes:
    """The envelope re-authored as `signer`'s site (site, actor and key changed), re-hashed
    and re-signed with that site's real key; its place in the chain (prev_hash) kept."""
    envelope = decode(value)
    envelope.site_id = signer.site_id
    envelope.signing_key_id = signer.key_id
    envelope.actor.user_id = f"u-{signer.site_id.lower()}-impostor"
    envelope.actor.printed_name = "Impostor"
    envelope.hash = envelope_hash(envelope)
    envelope.signature = signer.sign(envelope.hash)
    return encode(envelope)


def resealed_checkpoint(value: bytes, signer: SiteSigningKey, **changes: object) -> bytes:
    """A checkpoint envelope with payload fields changed (e.g. root=...), re-sealed by
    `signer` on the same prev_hash."""
    envelope = decode(value)
    checkpoint = read_checkpoint(envelope)
    for name, change in changes.items():
        setattr(checkpoint, name, change)
    envelope.payload = checkpoint.SerializeToString(deterministic=True)
    return encode(seal(envelope, envelope.prev_hash, signer))


def is_checkpoint(record: HistoryRecord) -> bool:
    return record.topic == CHECKPOINT_TOPIC


def rolled_back(
    header: HistoryHeader,
    records: Sequence[HistoryRecord],
    stream: str,
    keep: int,
    rewrite: SiteSigningKey | None = None,
) -> tuple[HistoryHeader, list[HistoryRecord]]:
    """The history as it was when checkpoint `keep` of checkpoint stream `stream` was
    published: that service's later checkpoints and the events they committed removed,
    offsets renumbered. With `rewrite` (the service's own key, i.e. its site), a new
    checkpoint `keep + 1` over the rolled-back heads follows, chained and signed: a
    consistent history that only an earlier copy of the checkpoints contradicts."""
    committed: dict[str, Head] = {}
    kept_checkpoint: bytes | None = None
    topic = site = ""
    doomed: set[int] = set()
    for index, record in enumerate(records):
        if not is_checkpoint(record):
            continue
        envelope = decode(record.value)
        if envelope.aggregate_id != stream:
            continue
        checkpoint = read_checkpoint(envelope)
        topic, site = checkpoint.topic, envelope.site_id
        if checkpoint.sequence <= keep:
            committed = fold_heads(committed, checkpoint)
            kept_checkpoint = record.value
        else:
            doomed.add(index)
    for index, record in enumerate(records):
        if record.topic != topic:
            continue
        envelope = decode(record.value)
        if envelope.site_id != site:
            continue
        head = committed.get(envelope.aggregate_id)
        if head is None or envelope.aggregate_version > head.version:
            doomed.add(index)
    header, kept = remove_renumbered(header, records, doomed)
    if rewrite is not None and kept_checkpoint is not None:
        previous = decode(kept_checkpoint)
        envelope, _ = next_checkpoint(
            topic=topic,
            committed=committed,
            changed={},
            previous=CheckpointHead(previous.aggregate_version, previous.hash),
            position=read_checkpoint(previous).position,
            signer=rewrite,
            actor=RELAY_ACTOR,
            at=CHECKPOINTS_AT + timedelta(days=1),
        )
        last = max(
            (i for i, r in enumerate(kept) if r.value == kept_checkpoint), default=len(kept) - 1
        )
        record = kept[last]
        kept.insert(last + 1, replace(record, offset=record.offset + 1, value=encode(envelope)))
        for i in range(last + 2, len(kept)):
            if (kept[i].topic, kept[i].partition) == (record.topic, record.partition):
                kept[i] = replace(kept[i], offset=kept[i].offset + 1)
        header = replace(
            header,
            extents=[
                replace(e, end=e.end + 1)
                if (e.topic, e.partition) == (record.topic, record.partition)
                else e
                for e in header.extents
            ],
        )
    return header, kept
