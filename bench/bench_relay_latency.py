"""Store -> publish latency of the outbox relay: the old fixed idle sleep vs wake-on-write
(issue 18 item 1; target: store->publish median <= 5 ms).

    uv run --frozen python bench/bench_relay_latency.py [--seconds 4] [--rates 20,50,100]

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


def measure(
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rates", default="20,50,100")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    telemetry.setup_tracing("bench-relay-latency", "none")
    root = find_repo_root(ROOT)
    kafka = resolve_kafka(root)
    postgres = resolve_postgres(root)
    table: list[tuple[str, str, int, float, float, int, float]] = []
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
                        measured = measure(store, mode, kafka.address, rates, args.seconds)
                    finally:
                        store.close()
                    for rate, (latencies, publish_ms) in measured.items():
                        table.append(
                            (
                                store.name,
                                mode,
                                rate,
                                statistics.median(latencies),
                                percentile(latencies, 0.99),
                                len(latencies),
                                statistics.median(publish_ms),
                            )
                        )
    finally:
        postgres.close()
        kafka.close()
    print(
        "store->publish latency (save returned -> broker ack), relay thread in the writing"
        f" process, {args.seconds:g} s per rate, one run:"
    )
    print(
        f"  {'store':<11}{'relay waits by':<20}{'saves/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'saves':>7}{'kafka ack p50':>15}   target: p50 <= {TARGET_P50_MS:g} ms"
    )
    for name, mode, rate, p50, p99, count, ack in table:
        verdict = "met" if p50 <= TARGET_P50_MS else "missed"
        print(
            f"  {name:<11}{mode:<20}{rate:>8}{p50:>9.1f}{p99:>9.1f}{count:>7}{ack:>12.1f} ms"
            f"   {verdict}"
        )
    print(
        "  kafka ack p50: a page's send + flush until acks=all (the part of the latency no"
        " waiting strategy removes)"
    )


if __name__ == "__main__":
    main()
