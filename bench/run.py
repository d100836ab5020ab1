"""`make bench` = `uv run python bench/run.py`: every benchmarked path of issue 18 item 6 in ONE
process run, each figure printed beside its target (yes/NO) and beside the previous run's,
written to bench/results/latest.json with the machine, its load and the git commit.

  projection        the projection core (fold, Kafka raw consume of each client, e2e, e2e
                    verified, verify alone, 1M-event replay; below)
  verify            `v2v audit verify`: covered signatures skipped vs every signature, every
                    signature with 1 vs 2 worker processes and their ratio (target >= 2x), and
                    verify + replay of 1M events with checkpoints (bench_verify_checkpoints.py)
  relay_throughput  relay publish events/s from a backlog (bench_relay_checkpoints.py)
  relay_latency     relay store->publish p50/p99 at 20/50/100 saves/s, SQLite + PostgreSQL
                    (bench_relay_latency.py; target p50 <= 5 ms)
  scan_visible      courier scan -> visible in GetChain at 20/50/100 scans/s, open loop,
                    against the running consortium, with the components
                    (bench_scan_visible.py; target p99 <= 40 ms at 100/s)
  commands          commands/s per service at 1/4/16 clients beside the raw eventsourcing save
                    rate (bench_commands.py)
  stream_length     command p50 at stream lengths 0 / 1,000 (bench_stream_length.py)
  intake_numbers    enrolment and number issuing (bench_intake_numbers.py)
  reads             GetChain / HTTP chain reads: req/s and p99 (bench_reads.py)

Each module (bench/bench_<name>.py) exposes `measure(quick) -> dict` and `rows(result) ->
[(measure, value, target, ok)]` and also runs alone. A module that is not there makes its row
say "not run: missing"; a module that raises makes its row say "FAILED: <error>" (the others
still run) and the exit status 1.

The projection figures:
  fold_events_per_s               ChainFold.apply_bytes over serialized envelopes, in memory,
                                  one process (wall clock; cpu-time figure beside it)
  kafka_raw_consume_events_per_s  kafka-python reading the same topics, doing nothing else;
                                  beside it librdkafka (confluent-kafka) doing the same
                                  (bench_kafka.raw_consume_librdkafka, when there)
  kafka_e2e_events_per_s          the projection core from Kafka: fold + PostgreSQL store
                                  with the offsets, one transaction per batch, WITHOUT
                                  verifying the records (the baseline; the service always
                                  verifies); target >= 1.0x kafka-python's raw consume
  kafka_e2e_verified_events_per_s the same, verifying every record as the service does, in the
                                  consumer's thread (verify_workers 0) and in 2 worker processes
  verify_events_per_s_one_core    EnvelopeGate.check alone, in memory, one process
  replay_1m_seconds               1,000,000 events through ChainFold from a history file,
                                  incl. reading it and deriving every chain view and the KPIs

`--quick`: every module's quick mode (the projection on 20,000 events, the 1M figures scaled);
written to bench/results/latest-quick.json, so a smoke run never replaces the full figures.
`--only a,b`: those modules; the others' last figures are carried over in the results file.
`--events N`: the projection on N events (while developing; the 1M figures are then scaled).
Before a results file is replaced, it is kept as previous.json (previous-quick.json).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUICK_EVENTS = 20_000
PROJECTION_TARGETS = {
    "fold_events_per_s": 400_000,
    "e2e_vs_raw": 1.0,  # issue 18: >= 1.0x kafka-python's raw consume, same run (was 0.63x)
    "replay_1m_seconds": 10.0,
}
VERIFY_WORKERS = (0, 2)  # the consumer's thread; two worker processes

Row = tuple[str, str, str, bool | None]


# ------------------------------------------------------------------ the projection figures


def projection_measure(
    quick: bool = False, events: int = 1_000_000, seed: int = 2025
) -> dict[str, Any]:
    """Today's projection figures (issue 16/17), on `events` (20,000 when quick)."""
    import bench_kafka
    from bench_fold import measure_fold, measure_replay, measure_verify
    from bench_history import cached_history, cached_ring, load_values

    from v2v_platform.testing.infra import find_repo_root, resolve_kafka, resolve_postgres
    from v2v_projection.audit.verification import authorship_for
    from v2v_projection.verifier import open_verifier

    events = QUICK_EVENTS if quick else events
    history = cached_history(ROOT / ".v2v" / "bench", seed, events)
    ring = cached_ring(ROOT / ".v2v" / "bench", seed)
    replay = measure_replay(history, workers=os.cpu_count() or 1)  # before the records are
    single = measure_replay(history, workers=1)  # held in memory (forking copies less)
    records = load_values(history)
    fold = measure_fold([value for _, value in records])
    verify = measure_verify(records, ring)
    librdkafka = getattr(bench_kafka, "raw_consume_librdkafka", None)
    root = find_repo_root(ROOT)
    kafka, postgres = resolve_kafka(root), resolve_postgres(root)
    try:
        topics_of = sorted({topic for topic, _ in records})
        with bench_kafka.bench_topics(kafka.address, topics_of) as names:
            produced_s = bench_kafka.produce(kafka.address, records, names)
            topics = list(names.values())
            renamed = authorship_for(topics)  # the consortium's policy on the copies
            raw = bench_kafka.raw_consume(kafka.address, topics, len(records))
            raw_rd = librdkafka(kafka.address, topics, len(records)) if librdkafka else None
            e2e = bench_kafka.e2e_consume(
                kafka.address, postgres.address, topics, len(records), bench_kafka.TrustEverything
            )
            verified = {
                workers: bench_kafka.e2e_consume(
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
        "events": events,
        "fold_events_per_s": round(fold.events / fold.fold_wall_s),
        "fold_cpu_events_per_s": round(fold.events / fold.fold_cpu_s),
        "derive_all_chains_seconds": round(fold.derive_wall_s, 3),
        "chains": fold.chains,
        "kafka_raw_consume_events_per_s": round(raw.per_second),
        "kafka_raw_consume_librdkafka_events_per_s": (
            round(raw_rd.per_second) if raw_rd is not None else None
        ),
        "kafka_e2e_events_per_s": round(e2e.per_second),
        "e2e_vs_raw": round(e2e.per_second / raw.per_second, 3),
        "e2e_vs_raw_librdkafka": (
            round(e2e.per_second / raw_rd.per_second, 3) if raw_rd is not None else None
        ),
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
        "targets": PROJECTION_TARGETS,
    }


def projection_rows(result: dict[str, Any]) -> list[Row]:
    targets = result.get("targets", PROJECTION_TARGETS)
    scaled = " (scaled)" if result["replay_1m_scaled"] else ""
    librdkafka = result.get("kafka_raw_consume_librdkafka_events_per_s")
    e2e_target = targets["e2e_vs_raw"]
    return [
        (
            "fold (events/s, one core)",
            f"{result['fold_events_per_s']:,}",
            f">= {targets['fold_events_per_s']:,}",
            result["fold_events_per_s"] >= targets["fold_events_per_s"],
        ),
        ("  same, per cpu-second", f"{result['fold_cpu_events_per_s']:,}", "", None),
        (
            "kafka raw consume, kafka-python (ev/s)",
            f"{result['kafka_raw_consume_events_per_s']:,}",
            "",
            None,
        ),
        (
            "kafka raw consume, librdkafka (ev/s)",
            f"{librdkafka:,}"
            if librdkafka is not None
            else "not run: missing (bench_kafka.raw_consume_librdkafka)",
            "",
            None,
        ),
        ("kafka e2e (events/s)", f"{result['kafka_e2e_events_per_s']:,}", "", None),
        (
            "  e2e / raw kafka-python",
            f"{result['e2e_vs_raw']:.2f}x",
            f">= {e2e_target:.1f}x",
            result["e2e_vs_raw"] >= e2e_target,
        ),
        *(
            [("  e2e / raw librdkafka", f"{result['e2e_vs_raw_librdkafka']:.2f}x", "", None)]
            if result.get("e2e_vs_raw_librdkafka") is not None
            else []
        ),
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
        (
            f"replay 1M events (s){scaled}",
            f"{result['replay_1m_seconds']:.2f}",
            f"<= {targets['replay_1m_seconds']:g}",
            result["replay_1m_seconds"] <= targets["replay_1m_seconds"],
        ),
        ("  in one process", f"{result['replay_1m_single_process_seconds']:.2f}", "", None),
        ("  read + fold only", f"{result['replay_1m_read_and_fold_seconds']:.2f}", "", None),
        ("derive all chains + KPIs (s)", f"{result['derive_all_chains_seconds']:.2f}", "", None),
    ]


# ------------------------------------------------------------------ the modules

PROJECTION = SimpleNamespace(measure=projection_measure, rows=projection_rows)
MODULES: dict[str, str] = {
    "projection": "",  # this file's
    "verify": "bench_verify_checkpoints",
    "relay_throughput": "bench_relay_checkpoints",
    "relay_latency": "bench_relay_latency",
    "scan_visible": "bench_scan_visible",
    "commands": "bench_commands",
    "stream_length": "bench_stream_length",
    "intake_numbers": "bench_intake_numbers",
    "reads": "bench_reads",
}


class Missing(Exception):
    """The module's file is not there."""


def load(name: str) -> Any:
    """The module behind `name`; Missing when its file is not there (an import error inside
    it is its failure, raised as it is)."""
    module_name = MODULES[name]
    if not module_name:
        return PROJECTION
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name:
            raise Missing(f"bench/{module_name}.py") from error
        raise


@dataclass
class Outcome:
    name: str
    status: str  # "ok", "missing" or "failed"
    rows: list[Row]
    result: dict[str, Any] | None = None
    error: str = ""
    seconds: float = 0.0
    measured_at: str = ""
    load_average_at_start: list[float] = field(default_factory=list)
    load_average_at_end: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "error": self.error,
            "seconds": round(self.seconds, 1),
            "measured_at": self.measured_at,
            "load_average_at_start": self.load_average_at_start,
            "load_average_at_end": self.load_average_at_end,
            "result": self.result,
            "rows": [list(row) for row in self.rows],
        }


def _row(raw: Sequence[Any]) -> Row:
    """A module's row as (measure, value, target, ok); a 2-tuple (measure, value) is taken."""
    if len(raw) == 2:
        return (str(raw[0]), str(raw[1]), "", None)
    if len(raw) != 4 or raw[3] not in (True, False, None):
        raise TypeError(f"a row is (measure, value, target, ok True/False/None), got {raw!r}")
    return (str(raw[0]), str(raw[1]), str(raw[2]), raw[3])


def run_module(name: str, loader: Callable[[str], Any], quick: bool) -> Outcome:
    """Load and measure one module; never raises (missing / FAILED rows instead)."""
    began, load_start = time.monotonic(), [round(x, 2) for x in os.getloadavg()]
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")

    def outcome(status: str, rows: list[Row], **figures: Any) -> Outcome:
        return Outcome(
            name,
            status,
            rows,
            seconds=time.monotonic() - began,
            measured_at=measured_at,
            load_average_at_start=load_start,
            load_average_at_end=[round(x, 2) for x in os.getloadavg()],
            **figures,
        )

    try:
        module = loader(name)
        measure, rows = module.measure, module.rows
    except Missing as missing:
        return outcome("missing", [(name, f"not run: missing ({missing})", "", None)])
    except AttributeError as error:
        message = f"no measure()/rows(): {error}"
        return outcome("failed", [(name, f"FAILED: {message}", "", False)], error=message)
    except Exception as error:  # noqa: BLE001 - an import that fails is the module's failure
        return failed(name, error, outcome)
    try:
        result = measure(quick=quick)
        json.dumps(result)  # JSON-serialisable, as the results file needs
        table = [_row(raw) for raw in rows(result)]
    except Exception as error:  # noqa: BLE001 - the row says so; the rest still runs
        return failed(name, error, outcome)
    return outcome("ok", table, result=result)


def failed(name: str, error: Exception, outcome: Callable[..., Outcome]) -> Outcome:
    traceback.print_exception(error)
    text = f"{type(error).__name__}: {error}".splitlines()[0][:160]
    if not str(error).strip():  # a bare assert: where it failed
        frame = traceback.extract_tb(error.__traceback__)[-1]
        text += f"at {Path(frame.filename).name}:{frame.lineno}"
    return outcome("failed", [(name, f"FAILED: {text}", "", False)], error=text)


# ------------------------------------------------------------------ comparing, marking

NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def numbers(text: str) -> list[float]:
    """The numbers in a value text ("12,345", "3.2 / 40.1", "59 %", "1.85x")."""
    return [float(found.replace(",", "")) for found in NUMBER.findall(text)]


def change(previous: str, current: str) -> str:
    """The relative change of each number, "+12%" ("+5% / -3%" for two); "" when the texts
    do not hold the same count of numbers."""
    before, after = numbers(previous), numbers(current)
    if not before or len(before) != len(after):
        return ""
    parts = []
    for old, new in zip(before, after, strict=True):
        parts.append("n/a" if old == 0 else f"{(new - old) / abs(old):+.0%}")
    return " / ".join(parts)


def mark(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "NO")


def previous_values(document: dict[str, Any] | None) -> dict[tuple[str, str], str]:
    """(module, measure) -> value text of a results file (none from the older format)."""
    if not document or not isinstance(document.get("modules"), dict):
        return {}
    values = {}
    for module, outcome in document["modules"].items():
        if outcome.get("status") != "ok":
            continue
        for row in outcome.get("rows", []):
            values[(module, row[0])] = row[1]
    return values


def table(outcomes: list[Outcome], previous: dict[tuple[str, str], str]) -> str:
    """Every row: measure, value, target, ok, the previous run's value and the change."""
    lines: list[tuple[str, ...]] = [("measure", "value", "target", "ok", "previous", "change")]
    for outcome in outcomes:
        lines.append((f"== {outcome.name} ({outcome.status}, {outcome.seconds:.0f} s)",))
        for name, value, target, ok in outcome.rows:
            before = previous.get((outcome.name, name), "") if outcome.status == "ok" else ""
            moved = change(before, value) if before else ""
            lines.append((name, value, target, mark(ok), before, moved))
    full = [line for line in lines if len(line) == 6]
    caps = (50, 22, 14, 3, 22)  # a longer text pushes its line on, not every line
    widths = [min(cap, max(len(line[n]) for line in full)) for n, cap in enumerate(caps)]
    text = []
    for line in lines:
        if len(line) != 6:
            text.append(line[0])
            continue
        measure, value, target, marked, before, moved = line
        text.append(
            f"{measure:{widths[0]}}  {value:>{widths[1]}}  {target:>{widths[2]}}  {marked:3}"
            f"  {before:>{widths[4]}}  {moved}".rstrip()
        )
    text.insert(1, "-" * len(text[0]))
    return "\n".join(text)


def closing(outcomes: list[Outcome]) -> list[str]:
    """What was missed, failed or not run."""
    lines = []
    missed = [
        (o.name, row) for o in outcomes if o.status == "ok" for row in o.rows if row[3] is False
    ]
    for module, (name, value, target, _) in missed:
        lines.append(f"missed: {module}: {name.strip()} = {value} (target {target})")
    for outcome in outcomes:
        if outcome.status == "failed":
            lines.append(f"FAILED: {outcome.name}: {outcome.error}")
        elif outcome.status == "missing":
            lines.append(f"not run: {outcome.name}: {outcome.rows[0][1]}")
    met = sum(1 for o in outcomes for row in o.rows if row[3] is True)
    lines.append(f"targets: {met} met, {len(missed)} missed")
    return lines


# ------------------------------------------------------------------ the machine


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def machine() -> dict[str, Any]:
    from google.protobuf.internal import api_implementation

    model, memory_gb = "unknown", None
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        names = [line for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0].split(":", 1)[1].strip() if names else model
    if meminfo.exists():
        total = [line for line in meminfo.read_text().splitlines() if line.startswith("MemTotal")]
        memory_gb = round(int(total[0].split()[1]) / 1024 / 1024, 1) if total else None
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "memory_gb": memory_gb,
        "python": platform.python_version(),
        "protobuf_backend": api_implementation.Type(),
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def git_state() -> dict[str, Any]:
    return {"commit": _git("rev-parse", "HEAD"), "dirty": bool(_git("status", "--porcelain"))}


# ------------------------------------------------------------------ the run


def results_paths(out: Path | None, quick: bool) -> tuple[Path, Path]:
    latest = out or RESULTS / ("latest-quick.json" if quick else "latest.json")
    return latest, latest.with_name(latest.name.replace("latest", "previous", 1))


def document(
    outcomes: list[Outcome],
    quick: bool,
    info: dict[str, Any],
    load_start: list[float],
    earlier: dict[str, Any] | None,
) -> dict[str, Any]:
    """The results file; with `--only`, the other modules' figures of the earlier file
    carried over (each says when it was measured)."""
    modules = {outcome.name: outcome.to_json() for outcome in outcomes}
    if earlier and isinstance(earlier.get("modules"), dict):
        for name, kept in earlier["modules"].items():
            if name not in modules:
                modules[name] = {**kept, "carried_over": True}
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": info,
        "git": git_state(),
        "load_average_at_start": load_start,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "modules": modules,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every module's quick mode")
    parser.add_argument("--only", default="", help="comma-separated module names (--list)")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--out", type=Path, default=None, help="the results file")
    parser.add_argument(
        "--events", type=int, default=1_000_000, help="the projection's history (default 1M)"
    )
    arguments = parser.parse_args(argv)
    if arguments.events != 1_000_000:  # while developing: the 1M figures are scaled
        PROJECTION.measure = partial(projection_measure, events=arguments.events)
    if arguments.list:
        for name, module in MODULES.items():
            where = f"bench/{module}.py" if module else "bench/run.py"
            there = module == "" or (ROOT / "bench" / f"{module}.py").exists()
            print(f"{name:18} {where}{'' if there else '  (missing)'}")
        return 0
    names = [n.strip() for n in arguments.only.split(",") if n.strip()] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; --list shows them")
    load_start = [round(x, 2) for x in os.getloadavg()]
    info = machine()
    print(
        f"{info['cpu_model']}, {info['cores']} cores, {info['memory_gb']} GB, Python"
        f" {info['python']}, kernel {info['kernel']}; load average {load_start}"
        f"{'; quick' if arguments.quick else ''}",
        flush=True,
    )
    latest, previous_path = results_paths(arguments.out, arguments.quick)
    earlier = json.loads(latest.read_text()) if latest.exists() else None
    outcomes = []
    for name in names:
        print(f"-- {name} ...", flush=True)
        outcomes.append(run_module(name, load, arguments.quick))
        done = outcomes[-1]
        print(f"-- {name}: {done.status} in {done.seconds:.0f} s", flush=True)
    result = document(
        outcomes, arguments.quick, info, load_start, earlier if names != list(MODULES) else None
    )
    latest.parent.mkdir(parents=True, exist_ok=True)
    if latest.exists():
        latest.replace(previous_path)
    latest.write_text(json.dumps(result, indent=2) + "\n")
    print(table(outcomes, previous_values(earlier)))
    for line in closing(outcomes):
        print(line)
    print(
        f"load average {load_start} at start, {result['load_average_at_end']} at end;"
        f" commit {result['git']['commit'][:12]}{' (dirty)' if result['git']['dirty'] else ''}"
    )
    print(
        f"written to {latest}" + (f"; the earlier file kept as {previous_path}" if earlier else "")
    )
    return 1 if any(outcome.status == "failed" for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
