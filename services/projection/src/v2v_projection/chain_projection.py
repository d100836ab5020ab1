"""`ChainProjection`: the chain fold (fold.py), its durable store (store.py) and the reads,
guarded by one lock; what the consumer feeds and both APIs read.

`ingest` takes a consumed batch. Every record is verified first, outside the lock (the
`RecordVerifier`: the platform's `EnvelopeGate`, the same checks as `v2v audit verify`); then
the fold takes what is trusted and new (duplicates are skipped; an envelope by another site
than its stream's author is refused), and the new envelopes, the refused records and the
batch's next offsets are stored in one transaction, by the batch writer (writer.py),
synchronously or, for the consumer, pipelined with the next poll. A refused record is never
folded: it is quarantined (store.py), counted (`untrusted_records`, the platform's
`v2v.consumer.quarantined` metric with consumer `projection`), logged once, and raised as a
critical `untrusted-record` alert on the chain of the COI it names, when it names one
(chain/alerts.py). If a save fails, the fold is rebuilt from the store before anything else is
folded, so what the fold holds is never lost or doubled across the retry. Reads derive chain
views lazily.

`load` (every start, and `python -m v2v_projection serve --rebuild` after clearing) rebuilds
the fold from the stored envelopes WITHOUT verifying them again: each was verified before it
was stored, and the store is the projection's own. Verifying them again would cost what
consuming them did (~70-120 µs per envelope and core: ~100 s for a million envelopes, against
~4 s to fold them). The quarantined rows are reloaded with the envelopes, so their alerts
survive a restart.

Signed checkpoints (`v2v.checkpoints.v1`, issue 15) come in the same batches: their gate is the
`CheckpointGate` (verifier.py), then the `CheckpointIndex` (checkpoint_index.py) takes each
service's checkpoints in sequence, checking the chain of checkpoints and each root; a refused
one is quarantined like any refused record (no COI: no chain alert). Taken (and parked)
checkpoints are stored as rows of the batch's segment, like envelopes, so `load` rebuilds the
index from the store with the fold (no root checks again; parked ones the index refused later
are left out by their quarantined location). Stored, not re-read from offset 0 on each start:
the checkpoint topic's offsets are committed with the rest of the batch in one transaction, a
start costs no signature check and no re-fold of every root, and nothing depends on the
topic's retention.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import DecodeError

from v2v_platform.consumer.consumer import QUARANTINED
from v2v_platform.consumer.quarantine import QuarantinedRecord
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted, untrusted
from v2v_platform.envelope.verify import CHECK_DECODE, Location
from v2v_projection.chain.alerts import UntrustedMark
from v2v_projection.chain.times import datetime_ns
from v2v_projection.checkpoint_checks import is_checkpoint_topic
from v2v_projection.checkpoint_index import CheckpointIndex, HeadProof, Refusal
from v2v_projection.fold import ChainFold
from v2v_projection.store import QUARANTINE_CONSUMER, Offsets, ProjectionStore, Row
from v2v_projection.verifier import Key, RecordVerifier
from v2v_projection.verifier import Record as Record
from v2v_projection.writer import BatchWriter, Writer

log = logging.getLogger("v2v.projection")
DETAIL_SHOWN = 300  # of a refusal's detail, in its alert


class NoVerifier(RuntimeError):
    """The projection was asked to fold records without a verifier to check them."""


class ChainProjection:
    def __init__(
        self,
        store: ProjectionStore,
        writer: Writer | None = None,
        *,
        verifier: RecordVerifier | None = None,
    ) -> None:
        """`store` is read (and written by the default in-thread writer); `writer` may save
        through a connection of its own (writer_process.py). `verifier` checks every record
        `ingest` is given; without one, `ingest` refuses to fold anything (reads of a loaded
        store still work)."""
        self.store = store
        self.fold = ChainFold()
        self.checkpoints = CheckpointIndex()
        self.lock = threading.RLock()
        self.verifier = verifier
        self.untrusted_records = 0  # refused records quarantined since the start
        self.undecodable = 0  # of which were not envelopes
        self._quarantined: set[Location] = set()
        self._writer = writer or BatchWriter(store)

    def load(self) -> int:
        """Rebuild the fold from the stored envelopes (the fast path on start; they were
        verified before they were stored) and note the quarantined records on their chains."""
        with self.lock:
            self._writer.recover()
            quarantined = self.store.quarantined()
            refused = {row.location for row in quarantined}
            self.fold = ChainFold()
            self.checkpoints = CheckpointIndex()
            self.fold.apply_all(self._envelopes_taking_checkpoints(refused))
            self._quarantined = set()
            for row in quarantined:
                self._note(row.location, row.coi, mark_of(row))
            return self.fold.events_applied + self.fold.events_parked

    def _envelopes_taking_checkpoints(self, refused: set[Location]) -> Iterable[bytes]:
        """The stored envelopes for the fold; the stored checkpoints go to the index."""
        index = self.checkpoints
        kinds: dict[str, bool] = {}  # topic -> is it a checkpoint topic
        for topic, partition, offset, value in self.store.rows():
            checkpoint = kinds.get(topic)
            if checkpoint is None:
                checkpoint = kinds[topic] = is_checkpoint_topic(topic)
            if not checkpoint:
                yield value
                continue
            location = Location(topic, partition, offset)
            if location not in refused:
                index.take(decode(value), value, location, check_roots=False)

    def quarantined_records(self) -> list[QuarantinedRecord]:
        """Every record the projection refused (stored), oldest first: with or without a COI."""
        with self.lock:
            self._writer.drain()
            return self.store.quarantined()

    def offsets(self) -> dict[tuple[str, int], int]:
        """The stored next offsets (after a failed save: once the fold is rebuilt)."""
        with self.lock:
            if self._writer.failed:
                self._recover()
            self._writer.drain()
            return self.store.offsets()

    def ingest(
        self,
        records: Sequence[Record],
        offsets: Offsets | None = None,
        *,
        wait: bool = True,
        keys: Sequence[Key] | None = None,
    ) -> int:
        """Verify one consumed batch, fold what is trusted, store it; returns how many
        envelopes were new.

        `offsets`: the batch's next offset per partition (computed from `records` if absent).
        `keys`: the records' Kafka keys (the COI of a record that is not an envelope).
        `wait=False` returns once the batch is handed to the writer (the consumer's pipeline);
        a failure then surfaces at the next call, after the fold was rebuilt from the store.
        """
        if self.verifier is None:
            raise NoVerifier("the projection folds verified records only: give it a verifier")
        refused = dict(self.verifier.check(records, keys))
        now = datetime.now(UTC)
        with self.lock:
            if self._writer.failed:
                self._recover()
            new_rows, untrusted = self._fold_batch(records, refused)
            quarantined = [(record, now) for record in untrusted if self._quarantine(record, now)]
            offsets = next_offsets(records) if offsets is None else offsets
            try:
                self._writer.submit(new_rows, offsets, quarantined)
                if wait:
                    self._writer.drain()
            except BaseException:
                self._recover()
                raise
        return len(new_rows)

    def flush(self) -> None:
        """Wait until every ingested batch is stored (raises a failed save)."""
        self._writer.drain()

    def close(self) -> None:
        self._writer.close()
        self.store.close()
        if self.verifier is not None:
            self.verifier.close()

    def _recover(self) -> None:
        log.warning("storing a batch failed: rebuilding the fold from the store")
        self.load()

    def _fold_batch(
        self, records: Sequence[Record], refused: dict[int, Untrusted]
    ) -> tuple[list[Row], list[Untrusted]]:
        """The new trusted rows of the batch, and its untrusted records (with their bytes)."""
        fold = self.fold
        apply = fold.apply_bytes
        new_rows: list[Row] = []
        untrusted: list[Untrusted] = []
        checkpoint_topics = {t for t in {r[0] for r in records} if is_checkpoint_topic(t)}
        for index, record in enumerate(records):
            found = refused.get(index)
            if found is not None:
                untrusted.append(replace(found, raw=record[3]))
                continue
            if checkpoint_topics and record[0] in checkpoint_topics:
                if self._take_checkpoint(record, untrusted):
                    new_rows.append(record)
                continue
            skipped = fold.duplicates_skipped
            author = apply(record[3])
            if author is not None:
                untrusted.append(not_by_stream_author(record, author))
            elif fold.duplicates_skipped == skipped:
                new_rows.append(record)
        return new_rows, untrusted

    def _take_checkpoint(self, record: Record, refused: list[Untrusted]) -> bool:
        """Take a checkpoint that passed its gate; True: it is new (to be stored)."""
        topic, partition, offset, value = record
        outcome = self.checkpoints.take(decode(value), value, Location(topic, partition, offset))
        refused.extend(refusal_of(found) for found in outcome.refused)
        return outcome.new

    def _quarantine(self, record: Untrusted, at: datetime) -> bool:
        """Note a refused record on its chain; count and log it the first time its location
        is refused (True: it is to be stored)."""
        if not self._note(record.location, record.coi, mark_of(record, at)):
            return False
        self.untrusted_records += 1
        self.undecodable += CHECK_DECODE in record.reasons
        log.warning("quarantined, not folded: %s", record)
        topic = record.location.topic
        for reason in record.reasons:
            QUARANTINED.add(1, {"consumer": QUARANTINE_CONSUMER, "topic": topic, "reason": reason})
        return True

    def _note(self, location: Location, coi: str, mark: UntrustedMark) -> bool:
        if location in self._quarantined:
            return False
        self._quarantined.add(location)
        if coi:
            self.fold.distrust(coi, mark)
        return True

    def rebuild(self) -> None:
        """Forget everything: the next consumer start reads every topic from offset zero."""
        with self.lock:
            self._writer.drain()
            self.store.clear()
            self.fold = ChainFold()
            self.checkpoints = CheckpointIndex()
            self._quarantined = set()

    def read(self, reader: Callable[[ChainFold], Any]) -> Any:
        with self.lock:
            return reader(self.fold)

    def chain(self, coi: str) -> dict[str, Any] | None:
        with self.lock:
            return self.fold.chain(coi)

    def chains(self, cois: Iterable[str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            wanted = self.fold.cois() if cois is None else sorted(cois)
            views = (self.fold.chain(coi) for coi in wanted)
            return [view for view in views if view is not None]

    def kpis(self) -> dict[str, Any]:
        with self.lock:
            return self.fold.kpis()

    def envelopes_of(self, coi: str) -> list[bytes]:
        """The chain's envelopes as the fold took them (stream versions in order)."""
        with self.lock:
            return self.fold.envelopes_of(coi)

    def checkpoint_proof(self, topic: str, site_id: str, aggregate_id: str) -> HeadProof | None:
        """The stream's head committed by the latest verified checkpoint of its service
        (`topic` at `site_id`), with the audit path of its leaf."""
        with self.lock:
            return self.checkpoints.proof(topic, site_id, aggregate_id)


def next_offsets(records: Sequence[Record]) -> Offsets:
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, offset, _ in records:
        key = (topic, partition)
        if offset + 1 > offsets.get(key, -1):
            offsets[key] = offset + 1
    return offsets


def not_by_stream_author(record: Record, author: str) -> Untrusted:
    """The refusal of an envelope whose site is not its stream's author site."""
    topic, partition, offset, value = record
    location = Location(topic, partition, offset)
    found = EnvelopeGate.check_stream_author(decode(value), value, location, author)
    assert found is not None, "the fold refused it for another site than the stream's"
    return found


def refusal_of(refusal: Refusal) -> Untrusted:
    """A checkpoint the index refused, as the gate's refusals are quarantined."""
    return untrusted(refusal.breaks, refusal.raw, refusal.location, refusal.envelope)


def mark_of(record: Untrusted | QuarantinedRecord, at: datetime | None = None) -> UntrustedMark:
    """What a refused record shows on its chain: where it was, why, who it claims wrote it."""
    when = at if isinstance(record, Untrusted) else record.quarantined_at
    assert when is not None
    detail = (
        record.detail
        if len(record.detail) <= DETAIL_SHOWN
        else f"{record.detail[:DETAIL_SHOWN]}..."
    )
    shown = (
        f"untrusted record at {record.location} not applied ({record.reason});"
        f" claimed author {record.claimed_site or 'unknown'}: {detail}"
    )
    return UntrustedMark(
        str(record.location), datetime_ns(when), shown, claimed_event_id(record.raw)
    )


def claimed_event_id(raw: bytes) -> str:
    try:
        return decode(raw).event_id
    except DecodeError:
        return ""
