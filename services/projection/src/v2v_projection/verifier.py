"""Verifying consumed records before the projection folds them: the platform's `EnvelopeGate`
(decoding, event id, hash, Ed25519 signature against the consortium key ring, signer site,
event type of the topic, authorship policy), on every record, in this process or in worker
processes. Records of the checkpoint topic (`v2v.checkpoints.v1`) go through the
`CheckpointGate` instead (the same envelope checks, and the checkpoint's own: well formed, on
its signer's checkpoint stream, signer entitled to author the checkpoint's topic); the chain
of each service's checkpoints and their roots are checked where they are folded
(checkpoint_index.py).

Verification costs ~70-120 µs per envelope on one core (the signature dominates), about ten
times what folding and storing it costs, so it decides the projection's rate.
`ProcessVerifier` spreads each batch over worker processes, each with its own gate built from
the key ring file (the gate is pure: a record's verdict depends on its bytes, its location
and the ring only). `make bench` measures both (bench/run.py).

A verdict is the records that are NOT trusted, by their index in the batch, as the gate's
`Untrusted` (without its raw bytes: the caller has them). Both verifiers read the ring file
again when it changes (`KeyRingFile`), so a fixed ring takes effect without a restart.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from multiprocessing.connection import wait
from pathlib import Path
from typing import Protocol

from v2v_platform.envelope.authorship import AUTHORSHIP, AuthorshipPolicy
from v2v_platform.envelope.keys import KeyRing, KeyRingFile
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted
from v2v_platform.envelope.verify import Location
from v2v_projection.checkpoint_checks import CheckpointGate, is_checkpoint_topic

Record = tuple[str, int, int, bytes]  # topic, partition, offset, value
Key = bytes | None  # the record's Kafka key (the COI), naming the COI of a non-envelope
Refused = list[tuple[int, Untrusted]]  # (index in the batch, why), raw bytes left out
CHUNKS_PER_WORKER = 2  # a batch is cut in this many chunks per worker (evens out the load)
log = logging.getLogger("v2v.projection")


class RecordVerifier(Protocol):
    def check(self, records: Sequence[Record], keys: Sequence[Key] | None = None) -> Refused:
        """The records of the batch that must not be folded, with why."""
        ...

    def close(self) -> None: ...


def refused_records(
    gate: EnvelopeGate, records: Sequence[Record], keys: Sequence[Key] | None, first: int = 0
) -> Refused:
    refused: Refused = []
    checkpoints = CheckpointGate(gate)
    for index, (topic, partition, offset, value) in enumerate(records):
        key = keys[index] if keys is not None else None
        check = checkpoints.check if is_checkpoint_topic(topic) else gate.check
        found = check(value, Location(topic, partition, offset), key)
        if isinstance(found, Untrusted):
            refused.append((first + index, replace(found, raw=b"")))
    return refused


class InlineVerifier:
    """Checks each record in the calling thread."""

    def __init__(self, gate: EnvelopeGate) -> None:
        self.gate = gate

    def key_ring(self) -> KeyRing:
        """The ring the records are checked against (now)."""
        return self.gate.keys

    def check(self, records: Sequence[Record], keys: Sequence[Key] | None = None) -> Refused:
        return refused_records(self.gate, records, keys)

    def close(self) -> None:
        return None


_worker_gate: EnvelopeGate | None = None


def _start_worker(ring_path: Path, authorship: AuthorshipPolicy) -> None:
    global _worker_gate
    _worker_gate = EnvelopeGate(KeyRingFile(ring_path), authorship)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a worker outlives no killed projection (its queues stay open)
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()


def _exit_with(parent_sentinel: int) -> None:
    wait([parent_sentinel])
    os._exit(0)


def _check_chunk(first: int, records: list[Record], keys: list[Key] | None) -> Refused:
    assert _worker_gate is not None, "the worker's initializer builds its gate"
    return refused_records(_worker_gate, records, keys, first)


class ProcessVerifier:
    """Checks each batch in `workers` processes (spawned: the service has threads), each with
    a gate of its own read from `ring_path`. A pool whose worker died is replaced once per
    batch (the batch is checked again by the new pool)."""

    def __init__(
        self, ring_path: Path, workers: int, authorship: AuthorshipPolicy = AUTHORSHIP
    ) -> None:
        self._ring = KeyRingFile(ring_path)  # a missing or unreadable ring stops the start here
        self._spec = (ring_path, authorship)
        self._workers = workers
        self._chunks = workers * CHUNKS_PER_WORKER
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=self._spec,
        )

    def key_ring(self) -> KeyRing:
        """The ring the workers check against (read again when its file changes)."""
        return self._ring.current()

    def check(self, records: Sequence[Record], keys: Sequence[Key] | None = None) -> Refused:
        try:
            return self._check(records, keys)
        except BrokenProcessPool as error:
            log.warning("a verifying worker died (%s): starting new workers", error)
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._check(records, keys)

    def _check(self, records: Sequence[Record], keys: Sequence[Key] | None) -> Refused:
        size = max(1, -(-len(records) // self._chunks))
        futures = [
            self._pool.submit(
                _check_chunk,
                start,
                list(records[start : start + size]),
                list(keys[start : start + size]) if keys is not None else None,
            )
            for start in range(0, len(records), size)
        ]
        return [found for future in futures for found in future.result()]

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def open_verifier(
    ring_path: Path, workers: int = 0, authorship: AuthorshipPolicy = AUTHORSHIP
) -> RecordVerifier:
    """In this process (`workers` 0 or 1) or in that many worker processes. `authorship`: the
    consortium's policy (a benchmark on renamed topics gives its own)."""
    if workers <= 1:
        return InlineVerifier(EnvelopeGate(KeyRingFile(ring_path), authorship))
    return ProcessVerifier(ring_path, workers, authorship)
