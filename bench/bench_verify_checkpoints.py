"""`v2v audit verify` with and without the signature checks signed checkpoints cover (issue 15
item 5), in one run, over the same generated history (default 100,000 events, plus the
services' checkpoints, every `--every` events of a service and one at the end, 3 partitions
per topic), in one process:

  covered     verify_history(check_every_signature=False): only the signatures of events no
              verified checkpoint covers (and the checkpoints' own) are checked
  every       verify_history(check_every_signature=True): every event's signature
              (`--check-every-signature`; skipping covered signatures is the default)

and the breakdown of the work, each part timed alone over the same records: read (the history
file), decode (protobuf), hash (SHA-256 of the canonical bytes), signatures (Ed25519, the
count each mode checks), checkpoints/Merkle (the fold of every service's checkpoints and the
RFC 6962 root of each); "other" is the rest of the verifier (chains, authorship, encoding,
partitions, offsets, DIN bindings).

`uv run --frozen python bench/bench_verify_checkpoints.py [--events N]`; `make bench` runs it
too (bench/run.py, `verify_checkpoints`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_history import cached_history

from v2v_platform.checkpoints.envelopes import fold_heads, read_checkpoint
from v2v_platform.checkpoints.merkle import Head, leaves_of, root_of
from v2v_platform.envelope.codec import decode, envelope_hash
from v2v_platform.envelope.keys import KeyRing
from v2v_projection.audit.checkpoints import is_checkpoint_topic
from v2v_projection.audit.verification import VerifyOutcome, verify_history
from v2v_projection.history_file import read_history, write_history
from v2v_testkit.audit import partitioned
from v2v_testkit.checkpointed import with_checkpoints
from v2v_testkit.synthetic.consortium import key_ring, site_signers

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".v2v" / "bench"
EVENTS = 100_000
EVERY = 1_000  # a service's checkpoint every 1,000 of its events (and one at its end)


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


def _verify(path: Path, ring: KeyRing, every: bool) -> tuple[float, VerifyOutcome]:
    def work() -> VerifyOutcome:
        header, records = read_history(path)
        return verify_history(header, records, ring, check_every_signature=every)

    return _timed(work)


def measure_verify_checkpoints(
    seed: int = 2025, events: int = EVENTS, every: int = EVERY
) -> dict[str, Any]:
    path = checkpointed_history(CACHE, seed, events, every)
    ring = key_ring(site_signers(seed))
    covered_s, covered = _verify(path, ring, every=False)
    every_s, checked = _verify(path, ring, every=True)
    if covered.breaks or checked.breaks:
        raise RuntimeError(f"the bench history does not verify clean: {covered.summary()}")

    read_s, values = _timed(lambda: [(r.topic, r.value) for r in read_history(path)[1]])
    decode_s, envelopes = _timed(lambda: [(t, decode(v)) for t, v in values])
    hash_s, _ = _timed(lambda: [envelope_hash(e) for _, e in envelopes])
    signed = [(e.signing_key_id, e.hash, e.signature) for _, e in envelopes]
    verify = ring.verify
    signature_s, _ = _timed(lambda: [verify(k, h, s) for k, h, s in signed])
    per_signature_s = signature_s / len(signed)

    def merkle() -> int:
        committed: dict[str, dict[str, Head]] = {}
        for topic, envelope in envelopes:
            if is_checkpoint_topic(topic):
                heads = committed.get(envelope.aggregate_id, {})
                heads = committed[envelope.aggregate_id] = fold_heads(
                    heads, read_checkpoint(envelope)
                )
                root_of(leaves_of(heads))
        return len(committed)

    merkle_s, _ = _timed(merkle)
    records = covered.records

    def breakdown(total_s: float, signatures: int) -> dict[str, float]:
        parts = {
            "read": read_s,
            "decode": decode_s,
            "hash": hash_s,
            "signatures": signatures * per_signature_s,
            "checkpoints_merkle": merkle_s,
        }
        parts["other"] = max(0.0, total_s - sum(parts.values()))
        return {name: round(seconds, 3) for name, seconds in parts.items()}

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
        "speedup": round(every_s / covered_s, 2),
        "ed25519_verify_us": round(per_signature_s * 1e6, 1),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str]]:
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
    arguments = parser.parse_args()
    result = measure_verify_checkpoints(arguments.seed, arguments.events, arguments.every)
    for name, value in rows(result):
        print(f"{name:40} {value:>16}")
    print(
        f"{result['records']:,} records ({result['events']:,} events,"
        f" {result['checkpoints']:,} checkpoints, one per {result['checkpoint_every_events']:,}"
        f" events of a service); Ed25519 verify {result['ed25519_verify_us']} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
