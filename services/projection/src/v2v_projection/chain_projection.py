"""`ChainProjection`: the chain fold (fold.py), its durable store (store.py) and the reads,
guarded by one lock; what the consumer feeds and both APIs read.

`ingest` takes a consumed batch: the fold takes what is new (duplicates are skipped), and the
new envelopes with the batch's next offsets are stored in one transaction, by the batch
writer (writer.py), synchronously or, for the consumer, pipelined with the next poll. If a
save fails, the fold is rebuilt from the store before anything else is folded, so what the
fold holds is never lost or doubled across the retry. Reads derive chain views lazily.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from v2v_projection.fold import ChainFold, UndecodableEnvelope
from v2v_projection.store import Offsets, ProjectionStore, Row
from v2v_projection.writer import BatchWriter, Writer

log = logging.getLogger("v2v.projection")
Record = tuple[str, int, int, bytes]  # topic, partition, offset, value


class ChainProjection:
    def __init__(self, store: ProjectionStore, writer: Writer | None = None) -> None:
        """`store` is read (and written by the default in-thread writer); `writer` may save
        through a connection of its own (writer_process.py)."""
        self.store = store
        self.fold = ChainFold()
        self.lock = threading.RLock()
        self.undecodable = 0
        self._writer = writer or BatchWriter(store)

    def load(self) -> int:
        """Rebuild the fold from the stored envelopes (the fast path on start)."""
        with self.lock:
            self._writer.recover()
            self.fold = ChainFold()
            self.fold.apply_all(self.store.envelopes())
            return self.fold.events_applied + self.fold.events_parked

    def offsets(self) -> dict[tuple[str, int], int]:
        """The stored next offsets (after a failed save: once the fold is rebuilt)."""
        with self.lock:
            if self._writer.failed:
                self._recover()
            self._writer.drain()
            return self.store.offsets()

    def ingest(
        self, records: Sequence[Record], offsets: Offsets | None = None, *, wait: bool = True
    ) -> int:
        """Fold one consumed batch and store it; returns how many envelopes were new.

        `offsets`: the batch's next offset per partition (computed from `records` if absent).
        `wait=False` returns once the batch is handed to the writer (the consumer's pipeline);
        a failure then surfaces at the next call, after the fold was rebuilt from the store.
        """
        with self.lock:
            if self._writer.failed:
                self._recover()
            new_rows = self._fold_batch(records)
            offsets = next_offsets(records) if offsets is None else offsets
            try:
                self._writer.submit(new_rows, offsets)
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

    def _recover(self) -> None:
        log.warning("storing a batch failed: rebuilding the fold from the store")
        self.load()

    def _fold_batch(self, records: Sequence[Record]) -> list[Row]:
        fold = self.fold
        apply = fold.apply_bytes
        new_rows: list[Row] = []
        for record in records:
            skipped = fold.duplicates_skipped
            try:
                apply(record[3])
            except UndecodableEnvelope as error:
                self.undecodable += 1
                log.error("skipping %s[%d]@%d: %s", record[0], record[1], record[2], error)
                continue
            if fold.duplicates_skipped == skipped:
                new_rows.append(record)
        return new_rows

    def rebuild(self) -> None:
        """Forget everything: the next consumer start reads every topic from offset zero."""
        with self.lock:
            self._writer.drain()
            self.store.clear()
            self.fold = ChainFold()

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


def next_offsets(records: Sequence[Record]) -> Offsets:
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, offset, _ in records:
        key = (topic, partition)
        if offset + 1 > offsets.get(key, -1):
            offsets[key] = offset + 1
    return offsets
