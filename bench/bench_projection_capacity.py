"""Capacity of one projection replica (ADR 0011): what a full read replica holding the bench
history costs, measured.

    uv run --frozen python bench/bench_projection_capacity.py [--events 1000000 100000]

For each size (default: the 1M-event bench history and its 100k-event sibling, cached under
.v2v/bench by bench_history.py), the history is stored once as a projection store (SQLite, the
segments the consumer writes: 5,000 envelopes a batch; cached beside it), then a FRESH process
does what a replica does when it starts and serves: `ChainProjection.load()` from the store
(the start-up load: read the segments, fold every event) and then derives every chain view and
the KPIs (what reads derive lazily and keep). It reports

    events, chains          what the replica holds
    RSS MB                  resident memory after the load (fold only) and after the views
                            (fold + views), and the process's peak
    MB per 100k events      (RSS after the views - RSS of the same process before the store
                            was opened) / events x 100,000; the slope between the two sizes
                            beside it (what each further 100k events costs)
    start-up load s         `load()` (store read + fold), and the first derivation of every view,
                            wall clock (CPU seconds beside: on a busy machine the wall clock
                            says more about the machine; the load average is printed)

Only the projection's own code is timed (no Kafka, no verification: a replica's start-up load
does not verify again, ADR 0004; catching up from Kafka afterwards costs what consuming costs,
see `make bench`). Prints a table and the figures as JSON on the last line.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_history import cached_history

from v2v_projection.chain_projection import ChainProjection
from v2v_projection.history_file import read_history
from v2v_projection.store import SqliteProjectionStore

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".v2v" / "bench"
SEED = 2025
SIZES = (1_000_000, 100_000)
BATCH = 5_000  # envelopes per stored segment: the consumer's default max_poll_records


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, in MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def cached_store(events: int) -> Path:
    """The bench history of `events` events as a projection store (built once)."""
    path = CACHE / f"projection-store-seed{SEED}-events{events}.sqlite"
    if path.exists():
        return path
    history = cached_history(CACHE, SEED, events)
    building = path.with_suffix(".building")
    for stale in CACHE.glob(f"{building.name}*"):
        stale.unlink()
    started = time.monotonic()
    print(f"storing {events:,} events as a projection store {path.name} ...", flush=True)
    store = SqliteProjectionStore(building)
    try:
        _, records = read_history(history)
        batch: list[tuple[str, int, int, bytes]] = []
        offsets: dict[tuple[str, int], int] = {}
        for record in records:
            batch.append((record.topic, record.partition, record.offset, record.value))
            offsets[(record.topic, record.partition)] = record.offset + 1
            if len(batch) == BATCH:
                store.save(batch, offsets)
                batch = []
        if batch:
            store.save(batch, offsets)
    finally:
        store.close()
    building.rename(path)
    print(f"stored in {time.monotonic() - started:.0f} s", flush=True)
    return path


def measure(store_path: Path) -> dict[str, Any]:
    """In this (fresh) process: load the store into a projection, derive every view."""
    gc.collect()
    before, _ = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    projection = ChainProjection(SqliteProjectionStore(store_path))
    events = projection.load()
    loaded_s, loaded_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    gc.collect()
    after_load, _ = rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    chains = len(projection.chains())
    projection.kpis()
    views_s, views_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    gc.collect()
    after_views, peak = rss_mb()
    projection.close()
    return {
        "events": events,
        "chains": chains,
        "rss_before_mb": round(before, 1),
        "rss_after_load_mb": round(after_load, 1),
        "rss_after_views_mb": round(after_views, 1),
        "rss_peak_mb": round(peak, 1),
        "mb_per_100k_events": round((after_views - before) / events * 100_000, 1),
        "startup_load_s": round(loaded_s, 2),
        "startup_load_cpu_s": round(loaded_cpu_s, 2),
        "derive_views_s": round(views_s, 2),
        "derive_views_cpu_s": round(views_cpu_s, 2),
    }


def measured(events: int) -> dict[str, Any]:
    store = cached_store(events)
    command = [sys.executable, __file__, "--measure", str(store)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh process
    options = parser.parse_args()
    if options.measure is not None:
        print(json.dumps(measure(options.measure)))
        return 0
    started = time.monotonic()
    rows = [measured(events) for events in sorted(options.events, reverse=True)]
    by_events = sorted(rows, key=lambda row: row["events"])
    slope = None
    if len(by_events) >= 2:
        small, large = by_events[0], by_events[-1]
        grown = large["rss_after_views_mb"] - small["rss_after_views_mb"]
        slope = round(grown / (large["events"] - small["events"]) * 100_000, 1)
    header = (
        f"{'events':>10} {'chains':>7} {'RSS load':>9} {'RSS views':>10} {'peak':>7} "
        f"{'MB/100k':>8} {'load s (cpu)':>13} {'views s (cpu)':>14}"
    )
    print("projection replica capacity (fresh process: load from its SQLite store, then every")
    print(f"chain view and the KPIs); RSS in MB; load average {os.getloadavg()[0]:.1f}")
    print(header)
    for row in rows:
        load = f"{row['startup_load_s']:.1f} ({row['startup_load_cpu_s']:.1f})"
        views = f"{row['derive_views_s']:.1f} ({row['derive_views_cpu_s']:.1f})"
        print(
            f"{row['events']:>10,} {row['chains']:>7,} {row['rss_after_load_mb']:>9.0f} "
            f"{row['rss_after_views_mb']:>10.0f} {row['rss_peak_mb']:>7.0f} "
            f"{row['mb_per_100k_events']:>8.1f} {load:>13} {views:>14}"
        )
    if slope is not None:
        print(f"each further 100k events: {slope} MB (slope between the two sizes)")
    print(f"measured in {time.monotonic() - started:.0f} s")
    print(json.dumps({"replicas": rows, "mb_per_100k_events_slope": slope}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
