"""The outbox relay survives SIGKILL: nothing lost, per-COI order kept, each event applied once.

An eventsourcing application on PostgreSQL records 5,000 events for 200 COIs while the relay
runs as a separate process that is killed with SIGKILL at random moments and restarted.
Afterwards everything recorded is on Kafka in per-COI order, every hash chain and signature
verifies, and a consuming projection (which itself "crashes" between its durable write and its
offset commit once) applied each event exactly once.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from v2v_platform.auth.identity import Role
from v2v_platform.config import EventStoreSettings
from v2v_platform.consumer import (
    Delivered,
    EnvelopeConsumer,
    PostgresConsumerStore,
    apply_verified,
    checked_records,
)
from v2v_platform.envelope import (
    AuthorshipPolicy,
    ChainVerifier,
    EnvelopeGate,
    KeyRing,
    SiteSigningKey,
    decode,
)
from v2v_platform.envelope.headers import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_TRACEPARENT
from v2v_platform.ids import issue_coi
from v2v_platform.testing.kafka_topics import read_topic
from v2v_platform.testing.outbox_app import SITE_ID, ChainApp

pytestmark = pytest.mark.integration

COIS = 200
EVENTS_PER_COI = 25
MIN_KILLS = 20
TOPIC = "v2v.intake.events.v1"
DEADLINE_S = 240
STARTED = "relay for intake started"


@pytest.fixture
def signing_key(tmp_path: Path) -> SiteSigningKey:
    key = SiteSigningKey.generate(SITE_ID)
    key.save(tmp_path / "signing.key")
    return key


def _relay_env(tmp_path: Path, kafka: str, dsn: str) -> dict[str, str]:
    return {
        **os.environ,
        "V2V_CONTEXT": "intake",
        "V2V_SITE_ID": SITE_ID,
        "V2V_SIGNING_KEY_FILE": str(tmp_path / "signing.key"),
        "V2V_KAFKA_BOOTSTRAP": kafka,
        "V2V_POSTGRES_DSN": dsn,
        "V2V_RELAY_PAGE_SIZE": "40",
    }


def _start_relay(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a relay process and return once it has started (logged its start position)."""
    started_before = log.read_text().count(STARTED) if log.exists() else 0
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "v2v_platform.cli",
                "relay",
                "--spec",
                "v2v_platform.testing.outbox_app:SPEC",
            ],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )

    def started() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the relay exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        return log.read_text().count(STARTED) > started_before

    _wait_until(started, "a relay to start")
    return process


def _record_history(
    app: ChainApp, cois: list[str], go: queue.Queue[int], done: threading.Event
) -> None:
    """Records the history in bursts, one burst each time the test starts a relay."""
    try:
        pending: list[tuple[str, int | None]] = [(coi, None) for coi in cois]
        notes = [(coi, seq) for seq in range(EVENTS_PER_COI - 1) for coi in cois]
        random.shuffle(notes)
        pending += notes
        burst = len(pending) // MIN_KILLS
        while pending:
            go.get(timeout=DEADLINE_S)
            for coi, seq in pending[:burst]:
                app.start(coi) if seq is None else app.note(coi, seq)
            del pending[:burst]
    finally:
        done.set()


def _relay_position(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        try:
            row = conn.execute(
                "SELECT position FROM v2v_relay_position WHERE relay = 'intake-outbox'"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # no relay has started yet
    return int(row[0]) if row else 0


def _wait_until(condition: Any, what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


class CountingProjection:
    """The test's consumer state: how many events were applied per COI."""

    @staticmethod
    def create(conn: psycopg.Connection[Any]) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS applied (coi text PRIMARY KEY, n int NOT NULL)")

    def __call__(self, cursor: psycopg.Cursor[Any], delivered: Delivered) -> None:
        cursor.execute(
            "INSERT INTO applied VALUES (%s, 1) ON CONFLICT (coi) DO UPDATE SET n = applied.n + 1",
            (delivered.envelope.coi,),
        )


def _gate(key: SiteSigningKey) -> EnvelopeGate:
    """The consortium's gate, for a ring holding the test relay's key as a collection site's;
    the test application's events are `google.protobuf.Struct` payloads on the intake topic."""
    ring = KeyRing()
    ring.add(SITE_ID, key.public_key, [Role.COLLECTION])
    return EnvelopeGate(ring, AuthorshipPolicy(event_packages={TOPIC: "google.protobuf"}))


def _consume(
    kafka: str, conn: psycopg.Connection[Any], ours: set[str], expected: int, gate: EnvelopeGate
) -> tuple[int, int]:
    store = PostgresConsumerStore(conn, "crash-test")
    group = f"crash-test-{random.getrandbits(32):08x}"

    def consumer() -> EnvelopeConsumer:
        return EnvelopeConsumer(
            bootstrap=kafka,
            group_id=group,
            topics=[TOPIC],
            store=store,
            apply=_only(ours, CountingProjection()),
            gate=gate,
            max_poll_records=300,
        )

    first = consumer()
    _wait_until(lambda: first.poll_once().applied > 0, "a first batch")
    polled = first._consumer.poll(timeout_ms=2000)  # durable write, then "crash" before commit
    with store.transaction() as (cursor, ledger):
        crashed = apply_verified(
            list(checked_records(polled, gate)),
            ledger,
            cursor,
            _only(ours, CountingProjection()),
            gate,
            datetime.now(UTC),
        )
    first.close()
    second = consumer()
    _wait_until(
        lambda: second.poll_once().applied >= 0 and _applied(conn) >= expected, "all applied"
    )
    while second.poll_once(timeout_ms=1000).applied:
        pass  # drain anything left, to catch double application
    second.close()
    return crashed.applied, first.stats.duplicates + second.stats.duplicates


def _only(ours: set[str], apply: CountingProjection) -> Any:
    def apply_ours(cursor: psycopg.Cursor[Any], delivered: Delivered) -> None:
        if delivered.envelope.coi in ours:
            apply(cursor, delivered)

    return apply_ours


def _applied(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(sum(n), 0) FROM applied").fetchone()
    return int(row[0]) if row else 0


def test_relay_killed_repeatedly_loses_nothing(
    kafka_bootstrap: str,
    postgres_database: Any,
    signing_key: SiteSigningKey,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dsn = postgres_database.dsn
    base = random.randrange(1, 999_999 - COIS)
    cois = [str(issue_coi("A1234", 25, base + i)) for i in range(COIS)]
    ours = set(cois)
    app = ChainApp(env=EventStoreSettings(postgres_dsn=dsn).eventsourcing_env())
    env, log = _relay_env(tmp_path, kafka_bootstrap, dsn), tmp_path / "relay.log"

    recorded_all, go = threading.Event(), queue.Queue[int]()
    writer = threading.Thread(target=_record_history, args=(app, cois, go, recorded_all))
    writer.start()
    kills, kills_with_backlog = 0, 0
    while kills < MIN_KILLS or not recorded_all.is_set():
        relay = _start_relay(env, log)
        go.put(kills)  # the writer records a burst while this relay publishes
        time.sleep(random.uniform(0.05, 1.0))  # a random moment: this is the point of the test
        relay.send_signal(signal.SIGKILL)
        relay.wait()
        kills += 1
        kills_with_backlog += _relay_position(dsn) < (app.recorder.max_notification_id() or 0)
    writer.join()

    total = app.recorder.max_notification_id() or 0
    final = _start_relay(env, log)

    def caught_up() -> bool:
        if final.poll() is not None:
            pytest.fail(f"the relay exited with {final.returncode}:\n{log.read_text()[-4000:]}")
        return _relay_position(dsn) >= total

    _wait_until(caught_up, "the relay to catch up")
    final.send_signal(signal.SIGTERM)
    assert final.wait(timeout=60) == 0, log.read_text()[-3000:]

    ring = KeyRing()
    ring.add(SITE_ID, signing_key.public_key)
    verifier = ChainVerifier(ring)
    first_seen: dict[str, list[int]] = defaultdict(list)
    seen: set[tuple[str, int]] = set()
    breaks = []
    for location, record in read_topic(kafka_bootstrap, TOPIC, lambda r: r.key.decode() in ours):
        breaks += verifier.feed_bytes(record.value, location)
        envelope = decode(record.value)
        headers = dict(record.headers)
        assert record.key.decode() == envelope.coi
        assert headers[HEADER_EVENT_ID].decode() == envelope.event_id
        assert headers[HEADER_EVENT_TYPE].decode() == envelope.event_type
        assert headers[HEADER_TRACEPARENT].startswith(b"00-")
        if (envelope.aggregate_id, envelope.aggregate_version) not in seen:
            seen.add((envelope.aggregate_id, envelope.aggregate_version))
            first_seen[envelope.coi].append(envelope.aggregate_version)
    recorded = COIS * EVENTS_PER_COI
    published = len(seen)
    wire_duplicates = verifier.duplicates_seen

    with psycopg.connect(dsn, autocommit=True) as conn:
        CountingProjection.create(conn)
        crashed_batch, consumer_duplicates = _consume(
            kafka_bootstrap, conn, ours, recorded, _gate(signing_key)
        )
        applied = dict(conn.execute("SELECT coi, n FROM applied").fetchall())

    with capsys.disabled():
        print(
            f"\nrelay crash test: recorded={recorded} published={published}"
            f" wire_duplicates={wire_duplicates} applied={sum(applied.values())}"
            f" consumer_skipped_duplicates={consumer_duplicates} kills={kills}"
            f" kills_with_backlog={kills_with_backlog} redelivered_batch={crashed_batch}"
        )
    assert total == recorded
    assert kills >= MIN_KILLS
    assert breaks == [], "\n".join(map(str, breaks[:20]))
    assert published == recorded
    assert all(v == list(range(1, EVENTS_PER_COI + 1)) for v in first_seen.values())
    assert len(first_seen) == COIS
    assert applied == {coi: EVENTS_PER_COI for coi in cois}
    assert consumer_duplicates >= crashed_batch > 0, "the uncommitted batch must be redelivered"
    assert Counter(applied.values()) == Counter({EVENTS_PER_COI: COIS})
