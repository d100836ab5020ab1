"""The relay's publish rate over a backlog: today's relay against issue 18's (target >= 2x
events/s, in one run), and the checkpoint overhead on it (issue 15 item 1).

    uv run --frozen python bench/bench_relay_checkpoints.py [--quick] [--events 50000]
                                                             [--rounds 2]

One event store (SQLite, the embedded default) holds the backlog: `--events` events over
`--events / 4` streams (a Chain aggregate per COI). Each run publishes the whole backlog with a
fresh relay (its own SQLite relay state, position 0) to fresh, uniquely named copies of the
intake and checkpoints topics on a real broker (resolved as the tests resolve it), from the
first page to the position of the last event, pages of 500 (the relay's default); the variants
alternate, `--rounds` each:

  today (kafka-python, codec sealing)    the relay before issue 18's relay target: kafka-python's
                                         producer and, per event, `codec.build_envelope` +
                                         `codec.encode`, signed inline (`TodayRelay` below keeps
                                         that sealing), checkpoints every 1 s
  kafka-python, page sealing             V2V_RELAY_PRODUCER=kafka-python: the relay's page
                                         sealer (`relay.sealing`: built once, signed on
                                         threads), kafka-python's producer, checkpoints every 1 s
  librdkafka, page sealing (deployed)    the default: the page sealer and librdkafka
                                         (`relay.librdkafka`), checkpoints every 1 s
  librdkafka, checkpoints disabled       the same with its checkpoint interval beyond the run

Checkpoints are on as deployed (every 1 s, written ahead, acknowledged) in all but the last;
the last checkpoint (on stop) is not in the timed part. Rates are events per second (wall
clock, medians of the rounds); beside each, the relay process's CPU time per event (every
thread: the relay's, the signing threads, the producers' own), which a busy machine disturbs
less. The load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from opentelemetry.trace import Span

from v2v_platform import telemetry
from v2v_platform.checkpoints.checkpointer import Checkpointer
from v2v_platform.config import EventStoreSettings
from v2v_platform.envelope.codec import build_envelope, encode
from v2v_platform.envelope.from_domain import OutboundEvent
from v2v_platform.envelope.headers import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import ChainHead, OutboundRecord, OutboxRelay, SqliteRelayState
from v2v_platform.relay.process import RelayProducer, make_publisher, relay_actor
from v2v_platform.relay.relay import _signatures, _trace_headers
from v2v_platform.testing.infra import find_repo_root, resolve_kafka
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, ChainApp

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6
DISABLED_S = 1e9
CHECKPOINT_TOPIC_CONFIG = {"max.message.bytes": str(4 * 1024 * 1024)}
EVENTS, QUICK_EVENTS = 50_000, 5_000
ROUNDS, QUICK_ROUNDS = 2, 1
TARGET_RATIO = 2.0  # issue 18: relay >= 2x today's events/s, in one run
ISSUE_BASELINE = 7_548  # events/s from a 50,000-event backlog, as issue 18 measured it

TODAY = "today (kafka-python, codec sealing)"
KAFKA_PYTHON = "kafka-python, page sealing"
DEPLOYED = "librdkafka, page sealing (deployed)"
NO_CHECKPOINTS = "librdkafka, checkpoints disabled"
VARIANTS: dict[str, tuple[RelayProducer, bool, float]] = {
    # name: (producer, today's sealing, checkpoint interval)
    TODAY: ("kafka-python", True, 1.0),
    KAFKA_PYTHON: ("kafka-python", False, 1.0),
    DEPLOYED: ("librdkafka", False, 1.0),
    NO_CHECKPOINTS: ("librdkafka", False, DISABLED_S),
}


class TodayRelay(OutboxRelay):
    """The relay with the sealing it had before issue 18's relay target (the code as it was):
    per event `codec.build_envelope` (build, copy, copy again to hash, sign inline) and
    `codec.encode`."""

    def _seal(
        self, outbound: list[OutboundEvent], span: Span
    ) -> tuple[list[OutboundRecord], dict[str, ChainHead]]:
        ids = {o.content.aggregate_id for o in outbound}
        heads = self._state.heads(ids)
        changed: dict[str, ChainHead] = {}
        records = []
        page_trace = span.get_span_context().trace_id
        page_headers = telemetry.inject_headers()
        for item in outbound:
            content = item.content
            head = heads.get(content.aggregate_id)
            prev_hash = self._prev_hash(head, content.aggregate_id, content.aggregate_version)
            envelope = build_envelope(content, prev_hash, self._signer)
            heads[content.aggregate_id] = changed[content.aggregate_id] = ChainHead(
                content.aggregate_version, envelope.hash, _signatures(head, envelope.signature)
            )
            headers = [
                (HEADER_EVENT_TYPE, envelope.event_type.encode()),
                (HEADER_SCHEMA_VERSION, str(envelope.schema_version).encode()),
                (HEADER_EVENT_ID, envelope.event_id.encode()),
                *_trace_headers(item.traceparent, page_trace, page_headers),
            ]
            records.append(
                OutboundRecord(self._topic, envelope.coi.encode(), encode(envelope), headers)
            )
        return records, changed


def backlog(directory: Path, events: int) -> tuple[ChainApp, int]:
    """An event store with `events` events (4 per COI); returns it and its last position."""
    app = ChainApp(
        env=EventStoreSettings(sqlite_path=directory / "events.sqlite").eventsourcing_env()
    )
    streams = max(1, events // 4)
    for n in range(1, streams + 1):
        coi = str(issue_coi("A1234", 26, n))
        app.start(coi)
        for seq in range(3):
            app.note(coi, seq)
    last = app.recorder.max_notification_id()
    return app, int(last or 0)


def publish_backlog(
    app: ChainApp,
    last: int,
    bootstrap: str,
    directory: Path,
    interval_s: float,
    producer: RelayProducer = "librdkafka",
    today: bool = False,
) -> tuple[float, int, float]:
    """Seconds to publish the backlog with a fresh relay, checkpoints published meanwhile, and
    the process's CPU seconds meanwhile."""
    run = uuid.uuid4().hex[:8]
    topic, checkpoint_topic = f"bench-{run}.v2v.intake.events.v1", f"bench-{run}.v2v.checkpoints.v1"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics(
        [
            NewTopic(topic, PARTITIONS, 1),
            # the final checkpoint after a run without checkpoints carries every head (110
            # bytes each: 1.4 MB for 12,500 streams), beyond the broker's default 1 MiB
            NewTopic(checkpoint_topic, PARTITIONS, 1, topic_configs=CHECKPOINT_TOPIC_CONFIG),
        ]
    )
    signer = SiteSigningKey.generate(SITE_ID)
    state = SqliteRelayState(directory / f"relay-{run}.sqlite", "intake-outbox")
    publisher = make_publisher(producer, bootstrap, f"bench-relay-{run}")
    checkpointer = Checkpointer(
        state=state,
        publisher=publisher,
        signer=signer,
        topic=topic,
        actor=relay_actor("intake"),
        interval_s=interval_s,
        checkpoint_topic=checkpoint_topic,
    )
    relay = (TodayRelay if today else OutboxRelay)(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=signer,
        state=state,
        publisher=publisher,
        topic=topic,
        checkpointer=checkpointer,
    )
    stop = threading.Event()
    worker = threading.Thread(target=relay.run, args=(stop,), kwargs={"idle_wait_s": 0.005})
    cpu = time.process_time()
    started = time.perf_counter()
    worker.start()
    while state.position() < last:
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    during = checkpointer.published_total
    stop.set()
    worker.join()
    publisher.close()
    state.close()
    del publisher, checkpointer, relay
    gc.collect()  # a librdkafka producer ends with its last reference
    admin.delete_topics([topic, checkpoint_topic])
    admin.close()
    return seconds, during, cpu


def measure(
    quick: bool = False, events: int | None = None, rounds: int | None = None
) -> dict[str, Any]:
    """Every variant's events/s and CPU µs/event over one backlog, alternating, `rounds` each
    (50,000 events x 2 rounds; quick: 5,000 x 1)."""
    events = events or (QUICK_EVENTS if quick else EVENTS)
    rounds = rounds or (QUICK_ROUNDS if quick else ROUNDS)
    load_start = os.getloadavg()
    telemetry.setup_tracing("bench-relay-throughput", "none")
    kafka = resolve_kafka(find_repo_root(ROOT))
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu_us: dict[str, list[float]] = {name: [] for name in VARIANTS}
    checkpoints: dict[str, list[int]] = {name: [] for name in VARIANTS}
    try:
        with tempfile.TemporaryDirectory(prefix="v2v-bench-relay-") as scratch:
            directory = Path(scratch)
            app, last = backlog(directory, events)
            for _ in range(rounds):
                for name, (producer, today, interval) in VARIANTS.items():
                    seconds, published, cpu = publish_backlog(
                        app, last, kafka.address, directory, interval, producer, today
                    )
                    rates[name].append(last / seconds)
                    cpu_us[name].append(cpu / last * 1e6)
                    checkpoints[name].append(published)
            app.close()
    finally:
        kafka.close()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "events": last,
        "streams": last // 4,
        "rounds": rounds,
        "events_per_s": medians,
        "cpu_us_per_event": {name: statistics.median(v) for name, v in cpu_us.items()},
        "all_runs": {name: [round(r) for r in values] for name, values in rates.items()},
        "checkpoints_during_runs": checkpoints,
        "ratio_vs_today": medians[DEPLOYED] / medians[TODAY],
        "target_ratio": TARGET_RATIO,
        "issue_baseline_events_per_s": ISSUE_BASELINE,
        "checkpoint_overhead": (medians[NO_CHECKPOINTS] - medians[DEPLOYED])
        / medians[NO_CHECKPOINTS],
        "load_average_start": list(load_start),
        "load_average_end": list(os.getloadavg()),
    }


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """Each variant's events/s (CPU per event beside it), the deployed relay against today's
    (target >= 2x), the issue's baseline for reference, and the checkpoint overhead."""
    rates, cpu = result["events_per_s"], result["cpu_us_per_event"]
    backlog_text = f"{result['events']:,}-event backlog"
    lines: list[tuple[str, str, str, bool | None]] = [
        (
            f"relay events/s, {name}, {backlog_text}",
            f"{rates[name]:,.0f} ({cpu[name]:.0f} µs CPU/event)",
            "",
            None,
        )
        for name in VARIANTS
    ]
    ratio, target = result["ratio_vs_today"], result["target_ratio"]
    lines.append(
        (
            "relay events/s, deployed vs today (same run)",
            f"{ratio:.2f}x",
            f">= {target:g}x",
            ratio >= target,
        )
    )
    lines.append(
        (
            "relay events/s, issue 18's measure of today (for reference)",
            f"{result['issue_baseline_events_per_s']:,}",
            "",
            None,
        )
    )
    lines.append(
        (
            "relay checkpoint overhead (every 1 s vs disabled)",
            f"{result['checkpoint_overhead']:.1%}",
            "",
            None,
        )
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    result = measure(args.quick, args.events, args.rounds)
    print(
        f"relay publish rate, {result['events']:,}-event backlog over {result['streams']:,}"
        " streams (SQLite store, SQLite relay state, real Kafka, checkpoints every 1 s unless"
        f" disabled), median of {result['rounds']} round(s) each:"
    )
    for name, value, target, ok in rows(result):
        verdict = "" if ok is None else ("  yes" if ok else "  NO")
        print(f"  {name:<70} {value:>28}  {target}{verdict}")
    print(f"  all runs: {result['all_runs']}")
    print(f"  checkpoints during the runs: {result['checkpoints_during_runs']}")
    start, end = result["load_average_start"], result["load_average_end"]
    print(f"  load average before {start[0]:.2f} {start[1]:.2f} {start[2]:.2f},", end=" ")
    print(f"after {end[0]:.2f} {end[1]:.2f} {end[2]:.2f} ({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
