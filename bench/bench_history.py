"""The benchmark's history: exactly N generated events, cached as a history file under
.v2v/bench/ (generating and signing a million envelopes takes minutes; reading them, a second).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from pathlib import Path

from v2v_projection.history_file import (
    Extent,
    HistoryHeader,
    HistoryRecord,
    read_history,
    write_history,
)
from v2v_testkit.synthetic.chains import generate_history
from v2v_testkit.synthetic.consortium import key_ring, site_signers

EVENTS_PER_PATIENT_AT_LEAST = 48  # generated journeys average ~52 events


def cached_history(cache: Path, seed: int, events: int) -> Path:
    path = cache / f"history-seed{seed}-events{events}.v2vh"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    patients = math.ceil(events / EVENTS_PER_PATIENT_AT_LEAST)
    print(f"generating {events:,} events ({patients:,} patients, seed {seed}) into {path} ...")
    generated = generate_history(seed, patients)
    by_topic = trimmed(generated.by_topic, events)
    header = HistoryHeader(
        exported_at=datetime.now(UTC).isoformat(),
        source=f"generate_history(seed={seed}, patients={patients}) trimmed to {events} events",
        extents=[Extent(topic, 0, 0, len(values)) for topic, values in by_topic.items()],
    )
    records = (
        HistoryRecord(topic, 0, offset, value)
        for topic, values in by_topic.items()
        for offset, value in enumerate(values)
    )
    write_history(path, header, records)
    print(f"generated in {time.monotonic() - started:.0f} s")
    return path


def cached_ring(cache: Path, seed: int) -> Path:
    """The consortium key ring of the history's sites, with their roles (what the projection
    verifies the history against)."""
    path = cache / f"ring-seed{seed}.json"
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(key_ring(site_signers(seed)).to_json() + "\n")
    return path


def trimmed(by_topic: dict[str, list[bytes]], events: int) -> dict[str, list[bytes]]:
    """Each topic cut to its share of `events` (a tail cut keeps every aggregate's stream a
    prefix of itself: no version gaps)."""
    total = sum(len(values) for values in by_topic.values())
    if total < events:
        raise ValueError(f"generated {total} events, fewer than the {events} asked for")
    keep = {topic: len(values) * events // total for topic, values in by_topic.items()}
    largest = max(by_topic, key=lambda topic: len(by_topic[topic]))
    keep[largest] += events - sum(keep.values())
    return {topic: values[: keep[topic]] for topic, values in by_topic.items()}


def load_values(path: Path) -> list[tuple[str, bytes]]:
    _, records = read_history(path)
    return [(record.topic, record.value) for record in records]
