"""`make bench` = `uv run python bench/run.py`: the projection core's benchmarks, all measured
in the same run, written to bench/results/latest.json and printed as a table.

  fold_events_per_s               ChainFold.apply_bytes over serialized envelopes, in memory,
                                  one process (wall clock; cpu-time figure beside it)
  kafka_raw_consume_events_per_s  kafka-python reading the same topics, doing nothing else
  kafka_e2e_events_per_s          the projection core from Kafka: fold + PostgreSQL store
                                  with the offsets, one transaction per batch, WITHOUT
                                  verifying the records (the baseline; the service always
                                  verifies)
  kafka_e2e_verified_events_per_s the same, verifying every record as the service does (the
                                  platform's EnvelopeGate: hash, Ed25519 signature, signer,
                                  authorship), in the consumer's thread (verify_workers 0) and
                                  in 2 worker processes, same run, same history
  verify_events_per_s_one_core    EnvelopeGate.check alone, in memory, one process
  replay_1m_seconds               1,000,000 events through ChainFold from a history file
                                  (read_history), incl. reading the file and deriving every
                                  chain view and the KPIs (derivation in one worker process
                                  per core); also given: the same in one process, and the
                                  read + fold part alone
  verified_replay_1m              verify + replay of 1,000,000 events with checkpoints (issue 15
                                  item 5: target <= 3 s), the breakdown, and the same without
                                  checkpoints (bench_verify_checkpoints.py)
  verify_checkpoints              `v2v audit verify` of 100,000 events (at most `--events`)
                                  with the services' signed checkpoints: skipping the
                                  signatures checkpoints cover vs --check-every-signature,
                                  the ratio and the breakdown (bench_verify_checkpoints.py)

Kafka and PostgreSQL are resolved like the tests resolve them (V2V_KAFKA_BOOTSTRAP /
V2V_POSTGRES_DSN, a container, or the local scripts). `--events` shrinks the run while
developing (the replay is then scaled to its own event count and says so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench_fold import measure_fold, measure_replay, measure_verify
from bench_history import cached_history, cached_ring, load_values
from bench_kafka import (
    TrustEverything,
    bench_topics,
    e2e_consume,
    produce,
    raw_consume,
)
from bench_verify_checkpoints import (
    VERIFIED_REPLAY_TARGET_S,
    measure_verified_replay,
    measure_verify_checkpoints,
    replay_rows,
)
from bench_verify_checkpoints import rows as verify_checkpoints_rows
from google.protobuf.internal import api_implementation

from v2v_platform.testing.infra import find_repo_root, resolve_kafka, resolve_postgres
from v2v_projection.audit.verification import authorship_for
from v2v_projection.verifier import open_verifier

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
TARGETS = {
    "fold_events_per_s": 400_000,
    "e2e_vs_raw": 0.70,
    "replay_1m_seconds": 10.0,
    "verified_replay_1m_seconds": VERIFIED_REPLAY_TARGET_S,
}
VERIFY_WORKERS = (0, 2)  # the consumer's thread; two worker processes


def machine() -> dict[str, Any]:
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0].split(":", 1)[1].strip() if names else model
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "protobuf_backend": api_implementation.Type(),
        "platform": platform.platform(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run(events: int, seed: int) -> dict[str, Any]:
    info = machine()
    history = cached_history(ROOT / ".v2v" / "bench", seed, events)
    ring = cached_ring(ROOT / ".v2v" / "bench", seed)
    replay = measure_replay(history, workers=os.cpu_count() or 1)  # before the records are
    single = measure_replay(history, workers=1)  # held in memory (forking copies less)
    records = load_values(history)
    fold = measure_fold([value for _, value in records])
    verify = measure_verify(records, ring)
    verify_checkpoints = measure_verify_checkpoints(seed, min(events, 100_000))
    verified_replay = measure_verified_replay(
        seed, events, every_signature_per_s=verify_checkpoints["every_signature"]["events_per_s"]
    )
    root = find_repo_root(ROOT)
    kafka, postgres = resolve_kafka(root), resolve_postgres(root)
    try:
        with bench_topics(kafka.address, sorted({topic for topic, _ in records})) as names:
            produced_s = produce(kafka.address, records, names)
            topics = list(names.values())
            renamed = authorship_for(topics)  # the consortium's policy on the copies
            raw = raw_consume(kafka.address, topics, len(records))
            e2e = e2e_consume(
                kafka.address, postgres.address, topics, len(records), TrustEverything
            )
            verified = {
                workers: e2e_consume(
                    kafka.address,
                    postgres.address,
                    topics,
                    len(records),
                    partial(open_verifier, ring, workers, renamed),
                )
                for workers in VERIFY_WORKERS
            }
    finally:
        kafka.close()
        postgres.close()
    per_million = 1_000_000 / replay.events
    return {
        "measured_at": datetime.now(UTC).isoformat(),
        "events": events,
        "fold_events_per_s": round(fold.events / fold.fold_wall_s),
        "fold_cpu_events_per_s": round(fold.events / fold.fold_cpu_s),
        "derive_all_chains_seconds": round(fold.derive_wall_s, 3),
        "chains": fold.chains,
        "kafka_raw_consume_events_per_s": round(raw.per_second),
        "kafka_e2e_events_per_s": round(e2e.per_second),
        "e2e_vs_raw": round(e2e.per_second / raw.per_second, 3),
        "kafka_e2e_verified_events_per_s": {
            f"verify_workers_{workers}": round(rate.per_second)
            for workers, rate in verified.items()
        },
        "verify_events_per_s_one_core": round(verify.events / verify.seconds),
        "kafka_produce_events_per_s": round(len(records) / produced_s),
        "replay_events": replay.events,
        "replay_1m_seconds": round(replay.seconds * per_million, 3),
        "replay_1m_workers": replay.workers,
        "replay_1m_single_process_seconds": round(single.seconds * per_million, 3),
        "replay_1m_read_and_fold_seconds": round(single.read_and_fold_seconds * per_million, 3),
        "replay_1m_scaled": replay.events != 1_000_000,
        "verify_checkpoints": verify_checkpoints,
        "verified_replay_1m": verified_replay,
        "targets": TARGETS,
        "machine": info,
        "load_average_at_end": list(os.getloadavg()),
    }


def table(result: dict[str, Any]) -> str:
    fold_ok = result["fold_events_per_s"] >= TARGETS["fold_events_per_s"]
    e2e_ok = result["e2e_vs_raw"] >= TARGETS["e2e_vs_raw"]
    replay_ok = result["replay_1m_seconds"] <= TARGETS["replay_1m_seconds"]
    scaled = " (scaled)" if result["replay_1m_scaled"] else ""
    checkpoints = result["verify_checkpoints"]
    rows = [
        ("fold (events/s, one core)", f"{result['fold_events_per_s']:,}", ">= 400,000", fold_ok),
        ("  same, per cpu-second", f"{result['fold_cpu_events_per_s']:,}", "", None),
        ("kafka raw consume (events/s)", f"{result['kafka_raw_consume_events_per_s']:,}", "", None),
        ("kafka e2e (events/s)", f"{result['kafka_e2e_events_per_s']:,}", "", None),
        ("  e2e / raw", f"{result['e2e_vs_raw']:.0%}", ">= 70 %", e2e_ok),
        *[
            (f"kafka e2e verified, {name.replace('_', ' ')}", f"{rate:,}", "", None)
            for name, rate in result["kafka_e2e_verified_events_per_s"].items()
        ],
        (
            "verify only (events/s, one core)",
            f"{result['verify_events_per_s_one_core']:,}",
            "",
            None,
        ),
        (f"replay 1M events (s){scaled}", f"{result['replay_1m_seconds']:.2f}", "<= 10", replay_ok),
        ("  in one process", f"{result['replay_1m_single_process_seconds']:.2f}", "", None),
        ("  read + fold only", f"{result['replay_1m_read_and_fold_seconds']:.2f}", "", None),
        ("derive all chains + KPIs (s)", f"{result['derive_all_chains_seconds']:.2f}", "", None),
        *[(name, value, "", None) for name, value in verify_checkpoints_rows(checkpoints)],
        *_verified_replay_rows(result["verified_replay_1m"]),
    ]
    lines = [f"{'measure':40} {'value':>14}  {'target':>11}  ok"]
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        lines.append(f"{name:40} {value:>14}  {target:>11}  {mark}")
    info = result["machine"]
    lines.append(
        f"{result['events']:,} events, {result['chains']:,} chains; {info['cpu_model']},"
        f" {info['cores']} cores, Python {info['python']}, protobuf {info['protobuf_backend']}"
    )
    return "\n".join(lines)


def _verified_replay_rows(replayed: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    (first_name, first_value), *rest = replay_rows(replayed)
    target = TARGETS["verified_replay_1m_seconds"]
    ok = replayed["with_checkpoints_s"] <= target
    return [(first_name, first_value, f"<= {target:g}", ok)] + [
        (name, value, "", None) for name, value in rest
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="history size (default 1M)")
    parser.add_argument("--seed", type=int, default=2025, help="generator seed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON")
    arguments = parser.parse_args()
    result = run(arguments.events, arguments.seed)
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    arguments.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written to {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
