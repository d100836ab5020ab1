"""In-memory measurements: the fold's hot path from serialized envelopes (one process, one
core), the derivation of every chain view and the KPIs, and the full 1M-event replay from a
history file (read, fold, derive)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path

from v2v_platform.envelope.keys import KeyRing
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted
from v2v_platform.envelope.verify import Location
from v2v_projection.fold import ChainFold
from v2v_projection.history_file import read_history

VERIFY_SAMPLE = 50_000  # records checked by `measure_verify` (the rate is steady long before)


@dataclass(frozen=True)
class FoldFigures:
    events: int
    fold_wall_s: float
    fold_cpu_s: float
    derive_wall_s: float
    chains: int


def measure_fold(values: list[bytes]) -> FoldFigures:
    gc.collect()
    fold = ChainFold()
    apply = fold.apply_bytes
    wall, cpu = time.perf_counter(), time.process_time()
    for value in values:
        apply(value)
    fold_wall, fold_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall = time.perf_counter()
    chains = fold.chains()
    fold.kpis()
    derive_wall = time.perf_counter() - wall
    if fold.events_applied != len(values):
        raise AssertionError(f"fold took {fold.events_applied} of {len(values)} events")
    return FoldFigures(len(values), fold_wall, fold_cpu, derive_wall, len(chains))


@dataclass(frozen=True)
class ReplayFigures:
    events: int
    seconds: float
    read_and_fold_seconds: float
    chains: int
    workers: int


def measure_replay(path: Path, workers: int) -> ReplayFigures:
    """A full replay of a history file: read it, fold every event, derive every chain view and
    the KPIs (the derivation in `workers` processes)."""
    gc.collect()
    started = time.perf_counter()
    _, records = read_history(path)
    fold = ChainFold()
    fold.apply_all(record.value for record in records)
    folded = time.perf_counter() - started
    chains = fold.chains(workers)
    fold.kpis()
    seconds = time.perf_counter() - started
    return ReplayFigures(fold.events_applied, seconds, folded, len(chains), workers)


@dataclass(frozen=True)
class VerifyFigures:
    events: int
    seconds: float


def measure_verify(records: list[tuple[str, bytes]], ring: Path) -> VerifyFigures:
    """`EnvelopeGate.check` on the first records, in this process (one core)."""
    gate = EnvelopeGate(KeyRing.load(ring))
    sample = records[:VERIFY_SAMPLE]
    started = time.perf_counter()
    for offset, (topic, value) in enumerate(sample):
        if isinstance(gate.check(value, Location(topic, 0, offset)), Untrusted):
            raise AssertionError(f"record {offset} of {topic} does not verify")
    return VerifyFigures(len(sample), time.perf_counter() - started)
