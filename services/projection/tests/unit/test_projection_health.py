"""The projection core's health tells the truth about its consumer and alert threads, and a
replica is not ready before it caught up with the topics (ADR 0011)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka.errors import KafkaTimeoutError

from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import load_settings
from v2v_platform.testing.producing import eventually
from v2v_projection import bootstrap as composition
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_projection.writer_process import StoreWriteFailed


class FakeConsumer:
    """Polls that succeed, fail as a lost store writer does (`writer_down`), or raise an error
    nobody can wait out (`broken`)."""

    made: list[FakeConsumer] = []

    def __init__(self, projection: Any, **settings: Any) -> None:
        self.writer_down = threading.Event()
        self.broken = threading.Event()
        self.closed = threading.Event()
        self.made.append(self)

    def poll_once(self, timeout_ms: int) -> int:
        if self.broken.is_set():
            raise KeyError("a bug in the fold")
        if self.writer_down.is_set():
            raise StoreWriteFailed("the store writer process exited")
        self.closed.wait(timeout_ms / 1000)
        return 0

    def rewind_to_stored(self) -> None:
        """Nothing to rewind."""

    def close(self) -> None:
        self.closed.set()


class FakeOffsets:
    """The topics' offsets as the broker would tell them: `end` per partition (beginning 0),
    or `error` raised."""

    made: list[FakeOffsets] = []

    def __init__(self, bootstrap: str, topics: Any, options: Any = None) -> None:
        self.end: dict[tuple[str, int], int] = {}
        self.error: Exception | None = None
        self.made.append(self)

    def measure(self) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], int]]:
        if self.error is not None:
            raise self.error
        return dict.fromkeys(self.end, 0), dict(self.end)

    def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProjectionService]:
    monkeypatch.setattr(composition, "ProjectionConsumer", FakeConsumer)
    monkeypatch.setattr(composition, "KafkaEndOffsets", FakeOffsets)
    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    init_pki(tmp_path / "pki", [parse_site_spec("AUDIT-1:auditor")])
    settings = load_settings(
        ProjectionSettings,
        site_id="AUDIT-1",
        pki_dir=tmp_path / "pki",
        sqlite_path=tmp_path / "projection.sqlite",
        kafka_bootstrap="127.0.0.1:9092",
    )
    running = bootstrap(settings)
    yield running
    running.stop()


def test_ready_and_live_while_the_consumer_and_alerts_run(service: ProjectionService) -> None:
    service.start_consumer()
    service.start_alert_hub(interval_s=0.05)
    http = TestClient(service.http_app)
    eventually(lambda: http.get("/ready").status_code == 200, "the (empty) topics caught up")
    assert http.get("/ready").json() == {"status": "ready"}
    assert http.get("/live").json() == {"status": "live"}


def test_a_consumer_that_cannot_store_stalls_then_recovers(service: ProjectionService) -> None:
    service.runtime.health.stall_after_s = 0.3
    service.start_consumer()
    consumer = FakeConsumer.made[-1]
    http = TestClient(service.http_app)
    eventually(lambda: service.catch_up is not None and service.catch_up.caught_up, "caught up")
    consumer.writer_down.set()
    eventually(lambda: http.get("/ready").status_code == 503, "the stall to show")
    reasons = http.get("/ready").json()["reasons"]
    assert reasons[0].startswith("consumer: no progress for ")
    assert reasons[0].endswith(" s: StoreWriteFailed: the store writer process exited")
    assert http.get("/live").status_code == 200
    consumer.writer_down.clear()
    eventually(lambda: http.get("/ready").status_code == 200, "progress again")


def test_a_consumer_that_dies_makes_the_projection_unready_and_not_live(
    service: ProjectionService,
) -> None:
    service.start_consumer()
    eventually(lambda: service.catch_up is not None and service.catch_up.caught_up, "caught up")
    FakeConsumer.made[-1].broken.set()
    http = TestClient(service.http_app)
    eventually(lambda: http.get("/live").status_code == 503, "the death to show")
    assert http.get("/ready").json()["reasons"] == [
        "consumer stopped: KeyError: 'a bug in the fold'"
    ]


def test_a_replica_behind_the_topics_is_not_ready_until_it_caught_up(
    service: ProjectionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = FakeOffsets("", ())  # the topics hold 500 records its (empty) store has not
    offsets.end = {("v2v.intake.events.v1", 0): 500, ("v2v.intake.events.v1", 1): 0}
    monkeypatch.setattr(composition, "KafkaEndOffsets", lambda *args: offsets)
    service.start_consumer()
    http = TestClient(service.http_app)
    catch_up = service.catch_up
    assert catch_up is not None
    eventually(lambda: catch_up.lag is not None, "the lag measured")
    reply = http.get("/ready")
    assert reply.status_code == 503
    assert reply.json()["reasons"] == [
        "catch-up: catching up with the topics before taking reads: 500 records behind, "
        "1 of 2 partitions more than 100 behind"
    ]
    assert http.get("/live").status_code == 200  # catching up is no reason to restart

    offsets.end[("v2v.intake.events.v1", 0)] = 100  # within the bound (V2V_CATCH_UP_MAX_LAG)
    eventually(lambda: http.get("/ready").status_code == 200, "caught up")
    offsets.end[("v2v.intake.events.v1", 0)] = 100_000  # lag later: the replica stays ready
    assert catch_up.check()
    assert http.get("/ready").status_code == 200


def test_a_replica_that_cannot_measure_its_lag_is_not_ready_and_says_why(
    service: ProjectionService, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsets = FakeOffsets("", ())
    offsets.error = KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9092")
    monkeypatch.setattr(composition, "KafkaEndOffsets", lambda *args: offsets)
    service.start_consumer()
    http = TestClient(service.http_app)
    expected = [
        "catch-up: catching up with the topics before taking reads: lag not measured: "
        "KafkaTimeoutError: Unable to bootstrap from 127.0.0.1:9092"
    ]
    eventually(lambda: http.get("/ready").json().get("reasons") == expected, "the reason")
    assert http.get("/live").status_code == 200
    offsets.error = None  # the broker answers: empty topics, nothing to catch up
    eventually(lambda: http.get("/ready").status_code == 200, "caught up")
