"""Checking deferred Ed25519 signatures in chunks, in this process or in forked workers
(issue 18 item 5: `v2v audit verify --workers N`).

`SignatureChecks` takes the verifier's deferred signatures in feed order (`add`, any number at
a time) and cuts them into chunks of `chunk` signatures. With one worker each chunk is checked
in this process as soon as it is full (the verifier's single-core behaviour). With more, the
first full chunk starts a pool of `workers` processes forked from this one (the key ring is
inherited, nothing but (key id, digest, signature) triples is sent to them), and each chunk is
checked there while the caller goes on reading; a history with fewer pending signatures than a
chunk never forks. A worker answers with the positions in its chunk whose signature does not
verify; each of those is checked again here with the platform's `deferred_signature_breaks`,
so a break found in a worker is, by construction, the break of checking in-process (and a
worker can only ever add a check, never skip one).

`finish` returns the breaks in the order the signatures were added, each with its sequence
number (0 for the first signature added), and ends the pool as forked_derivation.py does:
closed and joined, workers resetting SIGTERM/SIGINT (a terminated pool once hung CI); a worker
writes nothing, its std streams are /dev/null (a stream lock held by the parent's progress
bar thread at the fork would otherwise block the worker's exit flush).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Iterable
from multiprocessing.pool import AsyncResult, Pool

from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.verify import Break, DeferredSignature, deferred_signature_breaks
from v2v_projection.forked_derivation import _worker_signals

CHUNK = 2_000  # signatures per chunk: ~0.15-0.2 s of Ed25519 work, ~200 KB to send
Triple = tuple[str, bytes, bytes]  # key id, digest, signature
_inherited: KeyRing | None = None


def _start_worker() -> None:
    _worker_signals()
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (open until the worker exits)


def _failures(chunk: list[Triple]) -> list[int]:
    """The positions in `chunk` whose signature does not verify (in the worker)."""
    assert _inherited is not None, "workers inherit the key ring by fork"
    verify = _inherited.verify
    return [
        i
        for i, (key_id, digest, signature) in enumerate(chunk)
        if not verify(key_id, digest, signature)
    ]


class SignatureChecks:
    """Deferred signatures checked in order, in chunks, in `workers` processes (1: here)."""

    def __init__(self, keys: KeyRing, workers: int = 1, chunk: int = CHUNK) -> None:
        if workers < 1 or chunk < 1:
            raise ValueError(f"workers and chunk must be at least 1 (got {workers}, {chunk})")
        self._keys = keys
        self._workers = workers
        self._chunk = chunk
        self._buffer: list[DeferredSignature] = []
        self._added = 0  # sequence number of the buffer's first signature
        self._pool: Pool | None = None
        self._running: deque[tuple[int, list[DeferredSignature], AsyncResult[list[int]]]] = deque()
        self._found: list[tuple[int, Break]] = []
        self.checked = 0
        self.parallel = False  # whether workers were started (a full chunk, workers > 1)

    def add(self, signatures: Iterable[DeferredSignature]) -> None:
        self._buffer.extend(signatures)
        while len(self._buffer) >= self._chunk:
            chunk = self._buffer[: self._chunk]
            del self._buffer[: self._chunk]
            self._dispatch(chunk)

    def finish(self) -> list[tuple[int, Break]]:
        """Every break, in the order the signatures were added, with its sequence number."""
        try:
            if self._buffer:
                chunk, self._buffer = self._buffer, []
                self._dispatch(chunk)
            while self._running:
                self._collect()
        finally:
            self.close()
        found, self._found = self._found, []
        return found

    def close(self) -> None:
        """Ends the workers (if any): closed and joined once their work is done, terminated
        when abandoned (an error or Ctrl-C while they still had work)."""
        global _inherited
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            if self._running:
                self._running.clear()
                pool.terminate()
            else:
                pool.close()  # the workers end on their own: no SIGTERM (forked_derivation)
            pool.join()
        finally:
            _inherited = None

    def _dispatch(self, chunk: list[DeferredSignature]) -> None:
        first = self._added
        self._added += len(chunk)
        self.checked += len(chunk)
        if self._pool is None and self._workers > 1 and len(chunk) >= self._chunk:
            self._pool = self._start_pool()
        if self._pool is None:
            self._confirm(first, chunk, range(len(chunk)))
            return
        triples = [(d.key_id, d.digest, d.signature) for d in chunk]
        self._running.append((first, chunk, self._pool.apply_async(_failures, (triples,))))
        while self._running and self._running[0][2].ready():
            self._collect()  # the answers already in, so finished chunks are not held

    def _start_pool(self) -> Pool:
        global _inherited
        _inherited = self._keys
        self.parallel = True
        context = multiprocessing.get_context("fork")
        return context.Pool(self._workers, _start_worker)

    def _collect(self) -> None:
        first, chunk, result = self._running.popleft()
        self._confirm(first, chunk, result.get())

    def _confirm(self, first: int, chunk: list[DeferredSignature], suspects: Iterable[int]) -> None:
        """The breaks of the suspect signatures, checked here (all of a chunk checked here)."""
        for index in suspects:
            for found in deferred_signature_breaks(chunk[index], self._keys):
                self._found.append((first + index, found))
