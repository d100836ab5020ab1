"""A service's health tells the truth about its threads: gRPC health, GET /ready, GET /live."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka.errors import KafkaConnectionError

from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import PublishingServiceSettings, load_settings
from v2v_platform.health import LIVENESS_SERVICE, Heartbeat, PartStopped
from v2v_platform.healthcheck import check
from v2v_platform.service_runtime import RuntimeService
from v2v_platform.testing.outbox_app import SPEC
from v2v_platform.testing.producing import eventually

SERVICE_NAME = "v2v.demo.v1.DemoService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class DemoSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0
    stall_after_s: float = 60.0  # V2V_STALL_AFTER_S, as the services' settings declare it


demo_api = SimpleNamespace(
    SERVICE_NAME=SERVICE_NAME,
    REQUIRED_ROLES={f"/{SERVICE_NAME}/Do": frozenset({Role.COLLECTION})},
    register=lambda app: lambda server: None,
)


@dataclass
class DemoService(RuntimeService):
    context = "intake"
    relay_spec = SPEC
    api = demo_api
    settings: DemoSettings
    app: Any
    http_app: FastAPI = field(default_factory=FastAPI)


class Outage:
    """A consumer whose polls fail as they do while the broker is unreachable."""

    def __init__(self) -> None:
        self.broker_down = threading.Event()
        self.closed = threading.Event()

    def poll_once(self, timeout_ms: int) -> None:
        if self.broker_down.is_set():
            raise KafkaConnectionError("connection to 127.0.0.1:9092 refused")
        self.closed.wait(timeout_ms / 1000)

    def rewind_to_committed(self) -> None:
        """Nothing to rewind."""

    def close(self) -> None:
        self.closed.set()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec("HOSP-A:collection")])
    return directory


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException | None]:
    """What reaches the threads' excepthook (the traceback an unexpected death prints)."""
    seen: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


@pytest.fixture
def service(pki: Path) -> Iterator[DemoService]:
    values = {"site_id": "HOSP-A", "pki_dir": pki, "kafka_bootstrap": "127.0.0.1:9092"}
    running = DemoService(load_settings(DemoSettings, **values), app=None)
    yield running
    running.runtime.stop()


def grpc_status(pki: Path, service: DemoService, name: str = "") -> int:
    assert service.grpc is not None
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
    with secure_channel(f"127.0.0.1:{service.grpc.port}", credentials) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    return int(reply.status)


def dies_when(signal: threading.Event) -> Callable[[Heartbeat], None]:
    def loop(heartbeat: Heartbeat) -> None:
        signal.wait()
        raise sqlite3.DatabaseError("database disk image is malformed")

    return loop


def test_a_part_that_dies_turns_grpc_and_http_health_unhealthy_naming_it(
    pki: Path, service: DemoService, thread_errors: list[BaseException | None]
) -> None:
    service.start_grpc()
    http = TestClient(service.http_app)
    kill = threading.Event()
    service.runtime.run_part("facts-consumer", dies_when(kill))
    assert [grpc_status(pki, service, n) for n in ("", SERVICE_NAME, LIVENESS_SERVICE)] == [
        SERVING
    ] * 3
    assert http.get("/ready").json() == {"status": "ready"}
    assert http.get("/live").json() == {"status": "live"}

    kill.set()
    reason = "facts-consumer stopped: DatabaseError: database disk image is malformed"
    eventually(lambda: grpc_status(pki, service) == NOT_SERVING, "gRPC health NOT_SERVING")
    assert grpc_status(pki, service, SERVICE_NAME) == NOT_SERVING
    assert grpc_status(pki, service, LIVENESS_SERVICE) == NOT_SERVING
    assert service.grpc is not None
    healthy, message = check(f"127.0.0.1:{service.grpc.port}", SiteTlsFiles.for_site(pki, "HOSP-A"))
    assert (healthy, message) == (False, f"127.0.0.1:{service.grpc.port}: NOT_SERVING: {reason}")
    ready = http.get("/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json() == {
        "type": "urn:v2v:problem:not-ready",
        "title": "Not ready",
        "status": 503,
        "detail": reason,
        "reasons": [reason],
    }
    live = http.get("/live")
    assert (live.status_code, live.json()["reasons"]) == (503, [reason])
    assert [type(error) for error in thread_errors] == [sqlite3.DatabaseError]


def test_a_consumer_waiting_out_an_outage_stalls_then_serves_again(
    pki: Path, caplog: pytest.LogCaptureFixture
) -> None:
    values = {"site_id": "HOSP-A", "pki_dir": pki, "kafka_bootstrap": "127.0.0.1:9092"}
    service = DemoService(load_settings(DemoSettings, **values, stall_after_s=0.5), app=None)
    consumer = Outage()
    try:
        with caplog.at_level(logging.INFO, logger="v2v.health"):
            service.start_grpc()
            service.runtime.start_consumer("facts-consumer", consumer)  # type: ignore[arg-type]
            http = TestClient(service.http_app)
            consumer.broker_down.set()
            eventually(lambda: grpc_status(pki, service) == NOT_SERVING, "a stall to show")
            reasons = http.get("/ready").json()["reasons"]
            assert len(reasons) == 1
            assert reasons[0].startswith("facts-consumer: no progress for ")
            assert reasons[0].endswith(
                " s: KafkaConnectionError: connection to 127.0.0.1:9092 refused"
            )
            assert grpc_status(pki, service, LIVENESS_SERVICE) == SERVING  # an outage is waited out
            assert http.get("/live").status_code == 200
            for _ in range(3):
                assert grpc_status(pki, service) == NOT_SERVING
            consumer.broker_down.clear()
            eventually(lambda: grpc_status(pki, service) == SERVING, "progress again")
            assert http.get("/ready").status_code == 200
            changes = [r.getMessage() for r in caplog.records if r.name == "v2v.health"]
    finally:
        service.runtime.stop()
    assert len(changes) == 2  # each change logged once, however often health was asked
    assert changes[0].startswith("health: NOT_SERVING: facts-consumer: no progress for ")
    assert changes[1] == "health: SERVING again: every part alive and progressing"


def test_a_part_stopping_on_purpose_gives_its_reason_without_a_traceback(
    service: DemoService, thread_errors: list[BaseException | None]
) -> None:
    def stops(heartbeat: Heartbeat) -> None:
        raise PartStopped("the broker refused an event for good")

    part = service.runtime.run_part("relay", stops)
    eventually(lambda: not service.runtime.health.report().ready, "the relay to stop")
    assert service.runtime.health.report().reasons == [
        "relay stopped: the broker refused an event for good"
    ]
    assert part.name == "relay"
    assert thread_errors == []


def test_a_part_that_returns_before_the_service_stops_is_stopped(service: DemoService) -> None:
    service.runtime.run_in_thread("alerts", lambda: None)
    eventually(lambda: not service.runtime.health.report().live, "the alerts thread to end")
    assert service.runtime.health.report().reasons == [
        "alerts stopped: it returned before the service stopped"
    ]


def test_parts_ending_because_the_service_stops_are_not_reported_dead(
    service: DemoService,
) -> None:
    consumer = Outage()
    service.runtime.start_consumer("facts-consumer", consumer)  # type: ignore[arg-type]
    service.runtime.run_part("relay", lambda beat: service.runtime.stop_event.wait())
    assert service.runtime.health.report().ready
    service.runtime.stop()
    assert consumer.closed.is_set()
    assert service.runtime.health.report().reasons == ["the service is stopping"]
    assert service.runtime.health.report().live


def test_the_stall_bound_comes_from_the_settings(pki: Path) -> None:
    values = {"site_id": "HOSP-A", "pki_dir": pki}
    service = DemoService(load_settings(DemoSettings, **values, stall_after_s=7), app=None)
    assert service.runtime.health.stall_after_s == 7.0


def test_an_untrustworthy_revocation_list_turns_http_ready_unhealthy_naming_it(
    tmp_path: Path, pki: Path
) -> None:
    own = tmp_path / "pki"
    shutil.copytree(pki, own)
    values = {"site_id": "HOSP-A", "pki_dir": own, "kafka_bootstrap": "127.0.0.1:9092"}
    running = DemoService(load_settings(DemoSettings, **values), app=None)
    try:
        running.start_grpc()
        http = TestClient(running.http_app)
        assert http.get("/ready").status_code == 200

        (own / "ca.crl").write_bytes(b"not a CRL")

        def ready_reasons() -> list[str] | None:
            answer = http.get("/ready")
            return answer.json()["reasons"] if answer.status_code == 503 else None

        reasons = eventually(ready_reasons, "GET /ready 503 naming the revocation list", 15.0)
        assert [r for r in reasons if r.startswith("revocation: ")], reasons
    finally:
        running.runtime.stop()
