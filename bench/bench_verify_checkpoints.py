"""`v2v audit verify` with and without the signature checks signed checkpoints cover (issue 15
item 5), in one run, over the same generated history (default 100,000 events, plus the
services' checkpoints, every `--every` events of a service and one at the end, 3 partitions
per topic), in one process:

  covered     verify_history(check_every_signature=False): only the signatures of events no
              verified checkpoint covers (and the checkpoints' own) are checked
  every       verify_history(check_every_signature=True): every event's signature
              (`--check-every-signature`; skipping covered signatures is the default)
  every, 2 workers
              the same with the signatures checked in 2 forked worker processes
              (`--workers 2`, issue 18 item 5): records/s beside the one-process run's and the
              ratio beside the target (>= 2x on 2 cores), with the main process's own CPU
              seconds (reading, decoding, hashing, the chain checks and handing the signatures
              over: the part the workers do not take)

and the breakdown of the work, each part timed alone over the same records: read (the history
file), decode (protobuf), hash (SHA-256 of each record's bytes before its hash and signature,
`hash_matches`), signatures (Ed25519, the count each mode checks), checkpoints/Merkle (the
fold of every service's checkpoints and the RFC 6962 root of each); "other" is the rest of
the verifier (chains, authorship, encoding, partitions, offsets, DIN bindings).

`measure_verified_replay` (issue 15 item 5's figure): `v2v audit verify` of a 1,000,000-event
checkpointed history followed by its replay through the projection's fold (read, fold, every
chain view and the KPIs derived in one worker process per core), with the breakdown (read,
decode, hash, checkpoints/Merkle, signatures, the rest of verify, fold, derive) and beside it
the same without checkpoints (every signature checked: the 100,000-event run's rate scaled).

`uv run --frozen python bench/bench_verify_checkpoints.py [--events N] [--replay]`; `make bench`
runs both (bench/run.py's `verify`: `measure`, `rows`).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_history import cached_history

from v2v_platform.checkpoints.envelopes import changed_heads, read_checkpoint
from v2v_platform.checkpoints.merkle import HeadTree
from v2v_platform.envelope.codec import decode, hash_matches
from v2v_platform.envelope.keys import KeyRing
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.audit.verification import VerifyOutcome, verify_history
from v2v_projection.fold import ChainFold
from v2v_projection.history_file import read_history, write_history
from v2v_testkit.audit import partitioned
from v2v_testkit.checkpointed import with_checkpoints
from v2v_testkit.synthetic.consortium import key_ring, site_signers

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".v2v" / "bench"
EVENTS = 100_000
REPLAY_EVENTS = 1_000_000
VERIFIED_REPLAY_TARGET_S = 3.0  # issue 15 item 5: verify + replay of 1M events, 2 cores
EVERY = 1_000  # a service's checkpoint every 1,000 of its events (and one at its end)
PARALLEL_WORKERS = 2
PARALLEL_TARGET = 2.0  # issue 18 item 5: verify >= 2x events/s on 2 cores


def checkpointed_history(cache: Path, seed: int, events: int, every: int) -> Path:
    """The bench history of `events` events with the services' checkpoints, cached."""
    # "-digests": heads carry signature digests (a cache file written before them does not)
    path = cache / f"history-seed{seed}-events{events}-checkpoints{every}-digests.v2vh"
    if path.exists():
        return path
    _, records = read_history(cached_history(cache, seed, events))
    by_topic: dict[str, list[bytes]] = {}
    for record in records:
        by_topic.setdefault(record.topic, []).append(record.value)
    header, partitioned_records = partitioned(
        with_checkpoints(by_topic, site_signers(seed), every=every)
    )
    write_history(path, header, partitioned_records)
    return path


def _timed(work: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def _verify(
    path: Path, ring: KeyRing, every: bool, workers: int = 1
) -> tuple[float, VerifyOutcome]:
    def work() -> VerifyOutcome:
        header, records = read_history(path)
        return verify_history(header, records, ring, check_every_signature=every, workers=workers)

    return _timed(work)


def measure_verify_checkpoints(
    seed: int = 2025, events: int = EVENTS, every: int = EVERY
) -> dict[str, Any]:
    path = checkpointed_history(CACHE, seed, events, every)
    ring = key_ring(site_signers(seed))
    covered_s, covered = _verify(path, ring, every=False)
    cpu_started = time.process_time()
    every_s, checked = _verify(path, ring, every=True)
    every_cpu_s = time.process_time() - cpu_started
    cpu_started, children_started = time.process_time(), _children_cpu_s()
    parallel_s, parallel = _verify(path, ring, every=True, workers=PARALLEL_WORKERS)
    parallel_cpu_s = time.process_time() - cpu_started
    workers_cpu_s = _children_cpu_s() - children_started  # the pool is joined: reaped
    # on 2 free cores: the one-process run's CPU time over the larger of the main process's
    # CPU time and half the CPU time of all three processes
    free_cores_s = max(parallel_cpu_s, (parallel_cpu_s + workers_cpu_s) / PARALLEL_WORKERS)
    if covered.breaks or checked.breaks or parallel.breaks:
        raise RuntimeError(f"the bench history does not verify clean: {covered.summary()}")
    if parallel.signatures_checked != checked.signatures_checked:
        raise RuntimeError("the workers did not check every signature")

    parts = _parts(path, ring)
    records = covered.records

    def breakdown(total_s: float, signatures: int) -> dict[str, float]:
        return _verify_breakdown(parts, total_s, signatures)

    return {
        "events": records - covered.checkpoints,
        "records": records,
        "checkpoints": covered.checkpoints,
        "checkpoint_every_events": every,
        "covered": {
            "seconds": round(covered_s, 3),
            "events_per_s": round(records / covered_s),
            "signatures_checked": covered.signatures_checked,
            "events_covered_by_checkpoints": covered.covered_by_checkpoints,
            "breakdown_s": breakdown(covered_s, covered.signatures_checked),
        },
        "every_signature": {
            "seconds": round(every_s, 3),
            "events_per_s": round(records / every_s),
            "signatures_checked": checked.signatures_checked,
            "breakdown_s": breakdown(every_s, checked.signatures_checked),
        },
        "every_signature_workers": {
            "workers": PARALLEL_WORKERS,
            "seconds": round(parallel_s, 3),
            "events_per_s": round(records / parallel_s),
            "main_process_cpu_s": round(parallel_cpu_s, 3),
            "workers_cpu_s": round(workers_cpu_s, 3),
            "one_process_cpu_s": round(every_cpu_s, 3),
            "ratio_to_one_process": round(every_s / parallel_s, 2),
            "ratio_on_free_cores": round(every_cpu_s / free_cores_s, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "target_ratio": PARALLEL_TARGET,
            "cpus": os.cpu_count(),
        },
        "speedup": round(every_s / covered_s, 2),
        "ed25519_verify_us": round(parts["per_signature_s"] * 1e6, 1),
    }


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _parts(path: Path, ring: KeyRing) -> dict[str, float]:
    """Each part of verify timed alone over the history's records (seconds; the signature
    figure is per signature)."""
    read_s, values = _timed(lambda: [(r.topic, r.value) for r in read_history(path)[1]])
    decode_s, envelopes = _timed(lambda: [(t, decode(v)) for t, v in values])
    hash_s, _ = _timed(
        lambda: [hash_matches(v, e) for (_, v), (_, e) in zip(values, envelopes, strict=True)]
    )
    sample = [(e.signing_key_id, e.hash, e.signature) for _, e in envelopes[:20_000]]
    verify = ring.verify
    signature_s, _ = _timed(lambda: [verify(k, h, s) for k, h, s in sample])

    def merkle() -> int:
        trees: dict[str, HeadTree] = {}
        for topic, envelope in envelopes:
            if is_checkpoint_topic(topic):
                tree = trees.setdefault(envelope.aggregate_id, HeadTree())
                tree.update(changed_heads(read_checkpoint(envelope)))
                tree.root()
        return len(trees)

    merkle_s, _ = _timed(merkle)
    return {
        "read": read_s,
        "decode": decode_s,
        "hash": hash_s,
        "checkpoints_merkle": merkle_s,
        "per_signature_s": signature_s / len(sample),
    }


def _verify_breakdown(parts: dict[str, float], total_s: float, signatures: int) -> dict[str, float]:
    shares = {name: parts[name] for name in ("read", "decode", "hash", "checkpoints_merkle")}
    shares["signatures"] = signatures * parts["per_signature_s"]
    shares["other"] = max(0.0, total_s - sum(shares.values()))
    return {name: round(seconds, 3) for name, seconds in shares.items()}


def _replay(path: Path, workers: int) -> tuple[float, float, int]:
    """Read + fold, then every chain view and the KPIs (in `workers` processes): seconds of
    each, and the events folded."""
    fold = ChainFold()

    def read_and_fold() -> None:
        _, records = read_history(path)
        fold.apply_all(r.value for r in records if not is_checkpoint_topic(r.topic))

    fold_s, _ = _timed(read_and_fold)
    derive_s, _ = _timed(lambda: fold.kpis(workers))
    return fold_s, derive_s, fold.events_applied


def measure_verified_replay(
    seed: int = 2025,
    events: int = REPLAY_EVENTS,
    every: int = EVERY,
    every_signature_per_s: float | None = None,
) -> dict[str, Any]:
    """verify (covered signatures skipped, the default) + replay of `events` events, scaled
    to 1,000,000 when smaller. `every_signature_per_s`: the records/s of verify checking
    every signature (from `measure_verify_checkpoints`), for the figure without checkpoints;
    measured here on this history when not given."""
    path = checkpointed_history(CACHE, seed, events, every)
    ring = key_ring(site_signers(seed))
    verify_s, outcome = _verify(path, ring, every=False)
    if outcome.breaks:
        raise RuntimeError(f"the bench history does not verify clean: {outcome.summary()}")
    workers = os.cpu_count() or 1
    fold_s, derive_s, folded = _replay(path, workers)
    parts = _parts(path, ring)
    if every_signature_per_s is None:
        every_s, _ = _verify(path, ring, every=True)
        every_signature_per_s = outcome.records / every_s
    scale = REPLAY_EVENTS / folded
    breakdown = _verify_breakdown(parts, verify_s, outcome.signatures_checked)
    breakdown["fold_incl_read"] = round(fold_s, 3)
    breakdown["derive_views_and_kpis"] = round(derive_s, 3)
    with_s = (verify_s + fold_s + derive_s) * scale
    without_s = (outcome.records / every_signature_per_s + fold_s + derive_s) * scale
    return {
        "events": folded,
        "scaled_to_1m": folded != REPLAY_EVENTS,
        "checkpoints": outcome.checkpoints,
        "workers": workers,
        "with_checkpoints_s": round(with_s, 2),
        "without_checkpoints_s": round(without_s, 2),
        "target_s": VERIFIED_REPLAY_TARGET_S,
        "verify_s": round(verify_s * scale, 2),
        "replay_s": round((fold_s + derive_s) * scale, 2),
        "signatures_checked": outcome.signatures_checked,
        "breakdown_s": {name: round(value * scale, 2) for name, value in breakdown.items()},
    }


def replay_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    scaled = " (scaled)" if result["scaled_to_1m"] else ""
    lines = [
        (f"verify + replay 1M, checkpoints (s){scaled}", f"{result['with_checkpoints_s']:.2f}"),
        ("  without checkpoints (s)", f"{result['without_checkpoints_s']:.2f}"),
        ("  verify / replay (s)", f"{result['verify_s']:.2f} / {result['replay_s']:.2f}"),
    ]
    lines += [(f"  {part} s", f"{value:.2f}") for part, value in result["breakdown_s"].items()]
    return lines


QUICK_EVENTS = 20_000


def measure(quick: bool = False, seed: int = 2025) -> dict[str, Any]:
    """`make bench`'s `verify`: verify with and without the covered signatures and with 2
    workers (100,000 events; 20,000 when quick), then verify + replay of 1,000,000 events
    (20,000 scaled to 1M when quick)."""
    checkpoints = measure_verify_checkpoints(seed, QUICK_EVENTS if quick else EVENTS)
    replayed = measure_verified_replay(
        seed,
        QUICK_EVENTS if quick else REPLAY_EVENTS,
        every_signature_per_s=checkpoints["every_signature"]["events_per_s"],
    )
    return {"verify_checkpoints": checkpoints, "verified_replay_1m": replayed}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """`measure`'s figures beside their targets: 2 workers >= 2x one process (issue 18 item
    5), verify + replay of 1M events <= 3 s (issue 15 item 5)."""
    parallel = result["verify_checkpoints"]["every_signature_workers"]
    ratio_name = f"  ratio {parallel['workers']} workers / 1"
    lines: list[tuple[str, str, str, bool | None]] = []
    for name, value in verify_rows(result["verify_checkpoints"]):
        if name.startswith(ratio_name):
            target = parallel["target_ratio"]
            ok = parallel["ratio_to_one_process"] >= target
            lines.append((ratio_name, value, f">= {target:g}x", ok))
        else:
            lines.append((name, value, "", None))
    replayed = result["verified_replay_1m"]
    (first_name, first_value), *rest = replay_rows(replayed)
    target_s = replayed["target_s"]
    ok = replayed["with_checkpoints_s"] <= target_s
    lines.append((first_name, first_value, f"<= {target_s:g}", ok))
    lines += [(name, value, "", None) for name, value in rest]
    return lines


def verify_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    covered, every = result["covered"], result["every_signature"]
    lines = [
        ("verify, covered sigs skipped (rec/s)", f"{covered['events_per_s']:,}"),
        ("verify, every signature (rec/s)", f"{every['events_per_s']:,}"),
        ("  ratio", f"{result['speedup']:.2f}x"),
        (
            "  signatures checked (skip / every)",
            f"{covered['signatures_checked']:,} / {every['signatures_checked']:,}",
        ),
    ]
    parallel = result["every_signature_workers"]
    workers, main_cpu_s = parallel["workers"], parallel["main_process_cpu_s"]
    workers_cpu_s = parallel["workers_cpu_s"]
    lines += [
        (f"verify, every signature, {workers} workers (rec/s)", f"{parallel['events_per_s']:,}"),
        (
            f"  ratio {workers} workers / 1 (target >= {parallel['target_ratio']:.0f}x)",
            f"{parallel['ratio_to_one_process']:.2f}x",
        ),
        (
            "  seconds 1 / 2 workers (main CPU s)",
            f"{every['seconds']:.2f} / {parallel['seconds']:.2f} ({main_cpu_s:.2f})",
        ),
        (
            "  CPU s 1 process / main + workers",
            f"{parallel['one_process_cpu_s']:.2f} / {main_cpu_s:.2f} + {workers_cpu_s:.2f}",
        ),
        (
            f"  ratio on {workers} free cores (from CPU s)",
            f"{parallel['ratio_on_free_cores']:.2f}x",
        ),
        ("  load average (1 min) after", f"{parallel['load_average_1m']:.2f}"),
    ]
    for part in covered["breakdown_s"]:
        lines.append(
            (
                f"  {part} s (skip / every)",
                f"{covered['breakdown_s'][part]:.2f} / {every['breakdown_s'][part]:.2f}",
            )
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=EVENTS, help="history size (100,000)")
    parser.add_argument("--every", type=int, default=EVERY, help="events per checkpoint")
    parser.add_argument("--seed", type=int, default=2025, help="generator seed")
    parser.add_argument(
        "--replay", action="store_true", help="also verify + replay 1,000,000 events"
    )
    arguments = parser.parse_args()
    result = measure_verify_checkpoints(arguments.seed, arguments.events, arguments.every)
    for name, value in verify_rows(result):
        print(f"{name:40} {value:>16}")
    if arguments.replay:
        every_rate = result["every_signature"]["events_per_s"]
        replayed = measure_verified_replay(arguments.seed, every_signature_per_s=every_rate)
        for name, value in replay_rows(replayed):
            print(f"{name:40} {value:>16}")
        print(f"target: <= {replayed['target_s']} s with checkpoints")
    print(
        f"{result['records']:,} records ({result['events']:,} events,"
        f" {result['checkpoints']:,} checkpoints, one per {result['checkpoint_every_events']:,}"
        f" events of a service); Ed25519 verify {result['ed25519_verify_us']} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
