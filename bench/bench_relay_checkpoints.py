"""The relay's publish rate over a backlog with signed checkpoints every second vs without
(issue 15 item 1: the checkpoint overhead on the relay).

    uv run --frozen python bench/bench_relay_checkpoints.py [--events 20000] [--rounds 2]

One event store (SQLite, the embedded default) holds the backlog: `--events` events over
`--events / 4` streams (a Chain aggregate per COI). Each run publishes the whole backlog with a
fresh relay (its own SQLite relay state, position 0) to fresh, uniquely named copies of the
intake and checkpoints topics on a real broker (resolved as the tests resolve it), from the
first page to the position of the last event; the two variants alternate, `--rounds` each:

  checkpoints every 1 s    Checkpointer(interval_s=1): between pages, a checkpoint of the
                           changed heads and the root over every head, written ahead, acked
  without checkpoints      the same relay with its checkpoint interval far beyond the run

The last checkpoint (on stop) is not in the timed part. Rates are events per second.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from v2v_platform.checkpoints.checkpointer import Checkpointer
from v2v_platform.config import EventStoreSettings
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import KafkaPublisher, OutboxRelay, SqliteRelayState
from v2v_platform.relay.process import relay_actor
from v2v_platform.testing.infra import find_repo_root, resolve_kafka
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, ChainApp

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 6
DISABLED_S = 1e9


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
    app: ChainApp, last: int, bootstrap: str, directory: Path, interval_s: float
) -> tuple[float, int]:
    """Seconds to publish the backlog with a fresh relay, and checkpoints published meanwhile."""
    run = uuid.uuid4().hex[:8]
    topic, checkpoint_topic = f"bench-{run}.v2v.intake.events.v1", f"bench-{run}.v2v.checkpoints.v1"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (topic, checkpoint_topic)])
    signer = SiteSigningKey.generate(SITE_ID)
    state = SqliteRelayState(directory / f"relay-{run}.sqlite", "intake-outbox")
    publisher = KafkaPublisher(bootstrap, client_id=f"bench-relay-{run}")
    checkpointer = Checkpointer(
        state=state,
        publisher=publisher,
        signer=signer,
        topic=topic,
        actor=relay_actor("intake"),
        interval_s=interval_s,
        checkpoint_topic=checkpoint_topic,
    )
    relay = OutboxRelay(
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
    started = time.perf_counter()
    worker.start()
    while state.position() < last:
        time.sleep(0.002)
    seconds = time.perf_counter() - started
    during = checkpointer.published_total
    stop.set()
    worker.join()
    publisher.close()
    state.close()
    admin.delete_topics([topic, checkpoint_topic])
    admin.close()
    return seconds, during


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    kafka = resolve_kafka(find_repo_root(ROOT))
    try:
        with tempfile.TemporaryDirectory(prefix="v2v-bench-relay-") as scratch:
            directory = Path(scratch)
            app, last = backlog(directory, args.events)
            rates: dict[str, list[float]] = {"every 1 s": [], "disabled": []}
            checkpoints: list[int] = []
            for _ in range(args.rounds):
                for name, interval in (("every 1 s", 1.0), ("disabled", DISABLED_S)):
                    seconds, published = publish_backlog(
                        app, last, kafka.address, directory, interval
                    )
                    rates[name].append(last / seconds)
                    if interval == 1.0:
                        checkpoints.append(published)
            app.close()
    finally:
        kafka.close()
    on, off = statistics.median(rates["every 1 s"]), statistics.median(rates["disabled"])
    print(f"relay publish rate, {last:,}-event backlog over {last // 4:,} streams (SQLite store,")
    print(f"SQLite relay state, real Kafka), median of {args.rounds} round(s) each:")
    print(f"  checkpoints every 1 s   {on:10,.0f} events/s  (checkpoints meanwhile: {checkpoints})")
    print(f"  checkpoints disabled    {off:10,.0f} events/s")
    print(f"  overhead                {(off - on) / off:10.1%}")
    print(f"  all runs: { ({k: [round(r) for r in v] for k, v in rates.items()}) }")


if __name__ == "__main__":
    main()
