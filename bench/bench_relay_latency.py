"""Store -> publish latency of the outbox relay: the old fixed idle sleep vs wake-on-write
(issue 18 item 1; target: store->publish median <= 5 ms).

    uv run --frozen python bench/bench_relay_latency.py [--quick] [--seconds 4] [--rates 20,50,100]

(`make bench` runs it too: `measure`/`rows`, bench/run.py; `--quick`: 1 s per rate.)

For each event store (SQLite, PostgreSQL) and each way of waiting, a fresh event store, relay
state and pair of uniquely named topics on a real broker (Kafka and PostgreSQL are resolved as
the tests resolve them); the relay runs in a thread of the writing process, as in a service,
with its checkpointer, tracing on (no exporter). One writer saves one event per save (a note
on one of 20 chains) at 20, 50 and 100 saves/s for `--seconds` each. The latency of a save is
from the moment its save returned (committed) to the broker's acknowledgement of its record.

  fixed sleep 50 ms     the relay before issue 18: `run(idle_wait_s=0.05)`, no wake signal
                        (still selectable: V2V_RELAY_WAKE_ON_WRITE=false)
  wake-on-write         the in-process signal of the save (and, on PostgreSQL, LISTEN/NOTIFY),
                        fallback poll 1 s: what a service's relay does
  NOTIFY only (PG)      the relay woken by PostgreSQL NOTIFY alone: a relay as its own process
                        (`v2v relay`); on SQLite such a relay has the fallback poll only
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from v2v_platform import telemetry
from v2v_platform.checkpoints.checkpointer import Checkpointer
from v2v_platform.config import EventStoreSettings
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import (
    KafkaPublisher,
    OutboundRecord,
    OutboxRelay,
    PostgresRelayState,
    SqliteRelayState,
)
from v2v_platform.relay.process import relay_actor
from v2v_platform.relay.state import RelayStateStore
from v2v_platform.relay.wake import PostgresWakeListener, WakeSignal
from v2v_platform.testing import infra
from v2v_platform.testing.infra import find_repo_root, resolve_kafka, resolve_postgres
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, ChainApp
from v2v_platform.traced_application import TracedApplication

ROOT = Path(__file__).resolve().parents[1]
CHAINS = 20
TARGET_P50_MS = 5.0
OLD_IDLE_WAIT_S = 0.05
FALLBACK_POLL_S = 1.0
RATES = (20, 50, 100)
SECONDS = 4.0
QUICK_SECONDS = 1.0
MODES = ("fixed sleep 50 ms", "wake-on-write", "NOTIFY only")


class BenchChainApp(TracedApplication, ChainApp):
    """The test application saving through the platform kernel's save, as services do."""

    name = "ChainApp"  # the same tables (and NOTIFY channel) as ChainApp's


class AckClock:
    """The relay's publisher, noting when each record was acknowledged (in publish order)."""

    def __init__(self, inner: KafkaPublisher) -> None:
        self.inner = inner
        self.acked: list[float] = []
        self.publish_ms: list[float] = []  # per page: send + flush until acknowledged

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        began = time.perf_counter()
        self.inner.publish(records)
        now = time.perf_counter()
        self.acked.extend([now] * len(records))
        self.publish_ms.append((now - began) * 1000)


@dataclass
class Store:
    name: str
    env: dict[str, str]
    state: Callable[[], RelayStateStore]
    dsn: str | None
    close: Callable[[], None]


def sqlite_store(directory: Path) -> Store:
    path = directory / f"events-{uuid.uuid4().hex[:8]}.sqlite"
    return Store(
        "SQLite",
        EventStoreSettings(sqlite_path=path).eventsourcing_env(),
        lambda: SqliteRelayState(path.with_suffix(".relay.sqlite"), "intake-outbox"),
        None,
        lambda: None,
    )


def postgres_store(server_dsn: str) -> Store:
    database = infra.create_database(server_dsn, prefix="v2v_bench")
    return Store(
        "PostgreSQL",
        EventStoreSettings(postgres_dsn=database.dsn).eventsourcing_env(),
        lambda: PostgresRelayState(database.dsn, "intake-outbox"),
        database.dsn,
        lambda: infra.drop_database(server_dsn, database.dbname),
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_store(
    store: Store, mode: str, bootstrap: str, rates: list[int], seconds: float
) -> dict[int, tuple[list[float], list[float]]]:
    """Latencies (ms) of every save at each rate and the Kafka publish time (ms) of each page,
    for one store and one way of waiting."""
    run = uuid.uuid4().hex[:8]
    topic, checkpoint_topic = f"bench-{run}.v2v.intake.events.v1", f"bench-{run}.v2v.checkpoints.v1"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(t, 3, 1) for t in (topic, checkpoint_topic)])
    app = BenchChainApp(env=store.env)
    cois = [str(issue_coi("A1234", 26, n)) for n in range(1, CHAINS + 1)]
    for coi in cois:
        app.start(coi)
    signer = SiteSigningKey.generate(SITE_ID)
    state = store.state()
    inner = KafkaPublisher(bootstrap, client_id=f"bench-latency-{run}")
    clock = AckClock(inner)
    wake: WakeSignal | None = None
    if mode == "wake-on-write":
        wake = WakeSignal(app.name)
    elif mode == "NOTIFY only":
        wake = WakeSignal(f"elsewhere-{run}")  # no save in this process signals it
    if wake is not None and store.dsn is not None:
        PostgresWakeListener(store.dsn, str(app.recorder.channel_name), wake)  # type: ignore[attr-defined]
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=signer,
        state=state,
        publisher=clock,
        topic=topic,
        checkpointer=Checkpointer(
            state=state,
            publisher=inner,
            signer=signer,
            topic=topic,
            actor=relay_actor("intake"),
            interval_s=1.0,
            checkpoint_topic=checkpoint_topic,
        ),
        wake=wake,
        fallback_poll_s=FALLBACK_POLL_S,
    )
    stop = threading.Event()
    worker = threading.Thread(
        target=relay.run, args=(stop,), kwargs={"idle_wait_s": OLD_IDLE_WAIT_S}, daemon=True
    )
    worker.start()
    results: dict[int, tuple[list[float], list[float]]] = {}
    try:
        for rate in rates:
            _drain(clock, app)
            base, pages = len(clock.acked), len(clock.publish_ms)
            saved: list[float] = []
            started = time.perf_counter()
            for n in range(int(rate * seconds)):
                due = started + n / rate
                if (ahead := due - time.perf_counter()) > 0:
                    time.sleep(ahead)
                app.note(cois[n % CHAINS], n)
                saved.append(time.perf_counter())
            _drain(clock, app)
            acked = clock.acked[base : base + len(saved)]
            latencies = [(a - s) * 1000 for a, s in zip(acked, saved, strict=True)]
            results[rate] = (latencies, clock.publish_ms[pages:])
    finally:
        stop.set()
        worker.join(timeout=30)
        if wake is not None:
            wake.close()
        inner.close()
        state.close()
        app.close()
        admin.delete_topics([topic, checkpoint_topic])
        admin.close()
    return results


def _drain(clock: AckClock, app: Any, timeout_s: float = 60.0) -> None:
    """Wait until every recorded event was acknowledged."""
    expected = int(app.recorder.max_notification_id() or 0)
    deadline = time.monotonic() + timeout_s
    while len(clock.acked) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(f"relay published {len(clock.acked)} of {expected} events")
        time.sleep(0.01)


def measure(
    quick: bool = False, rates: tuple[int, ...] = RATES, seconds: float | None = None
) -> dict[str, Any]:
    """Every store and way of waiting at each rate (`seconds` per rate: 4, 1 when quick)."""
    seconds = seconds if seconds is not None else (QUICK_SECONDS if quick else SECONDS)
    load_start = os.getloadavg()
    telemetry.setup_tracing("bench-relay-latency", "none")
    root = find_repo_root(ROOT)
    kafka = resolve_kafka(root)
    postgres = resolve_postgres(root)
    figures: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="v2v-bench-latency-") as scratch:
            stores: list[Callable[[], Store]] = [
                lambda: sqlite_store(Path(scratch)),
                lambda: postgres_store(postgres.address),
            ]
            for make_store in stores:
                for mode in MODES:
                    store = make_store()
                    try:
                        if mode == "NOTIFY only" and store.dsn is None:
                            continue
                        measured = measure_store(store, mode, kafka.address, list(rates), seconds)
                    finally:
                        store.close()
                    for rate, (latencies, publish_ms) in measured.items():
                        figures.append(
                            {
                                "store": store.name,
                                "mode": mode,
                                "rate_per_s": rate,
                                "p50_ms": round(statistics.median(latencies), 2),
                                "p99_ms": round(percentile(latencies, 0.99), 2),
                                "saves": len(latencies),
                                "kafka_ack_p50_ms": round(statistics.median(publish_ms), 2),
                            }
                        )
    finally:
        postgres.close()
        kafka.close()
    return {
        "seconds_per_rate": seconds,
        "figures": figures,
        "target_p50_ms": TARGET_P50_MS,
        "load_average_at_start": [round(x, 2) for x in load_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Store->publish p50 of every store, way of waiting and rate; the target (p50 <= 5 ms)
    marks the relay as services run it (wake-on-write), whose p99 is given too."""
    lines: list[tuple[str, str, str, bool | None]] = []
    target = result["target_p50_ms"]
    for figure in result["figures"]:
        served = figure["mode"] == "wake-on-write"
        where = f"{figure['store']}, {figure['mode']}, {figure['rate_per_s']}/s"
        lines.append(
            (
                f"p50 ms {where}",
                f"{figure['p50_ms']:.1f}",
                f"<= {target:g}" if served else "",
                figure["p50_ms"] <= target if served else None,
            )
        )
        if served:
            lines.append((f"  p99 ms {where}", f"{figure['p99_ms']:.1f}", "", None))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per rate")
    parser.add_argument("--seconds", type=float, default=None, help=f"per rate ({SECONDS:g})")
    parser.add_argument("--rates", default=",".join(map(str, RATES)))
    args = parser.parse_args()
    rates = tuple(int(r) for r in args.rates.split(","))
    result = measure(args.quick, rates, args.seconds)
    print(
        "store->publish latency (save returned -> broker ack), relay thread in the writing"
        f" process, {result['seconds_per_rate']:g} s per rate, one run:"
    )
    print(
        f"  {'store':<11}{'relay waits by':<20}{'saves/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'saves':>7}{'kafka ack p50':>15}   target: p50 <= {TARGET_P50_MS:g} ms"
    )
    for figure in result["figures"]:
        verdict = "met" if figure["p50_ms"] <= TARGET_P50_MS else "missed"
        print(
            f"  {figure['store']:<11}{figure['mode']:<20}{figure['rate_per_s']:>8}"
            f"{figure['p50_ms']:>9.1f}{figure['p99_ms']:>9.1f}{figure['saves']:>7}"
            f"{figure['kafka_ack_p50_ms']:>12.1f} ms   {verdict}"
        )
    print(
        "  kafka ack p50: a page's send + flush until acks=all (the part of the latency no"
        " waiting strategy removes)"
    )
    print(f"  load average {result['load_average_at_start']} -> {result['load_average_at_end']}")


if __name__ == "__main__":
    main()
