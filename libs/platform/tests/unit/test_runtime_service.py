"""A service's composition on `RuntimeService`: gRPC API, relay settings, projection consumer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v_platform import service_runtime
from v2v_platform.auth import Role, SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import PublishingServiceSettings, load_settings
from v2v_platform.consumer import Delivered
from v2v_platform.read_queries import for_postgres
from v2v_platform.service_runtime import RuntimeService
from v2v_platform.testing.outbox_app import SPEC

SERVICE_NAME = "v2v.demo.v1.DemoService"


class DemoSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


registered: list[Any] = []
demo_api = SimpleNamespace(
    SERVICE_NAME=SERVICE_NAME,
    REQUIRED_ROLES={f"/{SERVICE_NAME}/Do": frozenset({Role.COLLECTION})},
    register=lambda app: lambda server: registered.append((app, server)),
)


@dataclass
class DemoService(RuntimeService):
    context = "intake"
    relay_spec = SPEC
    api = demo_api
    settings: DemoSettings
    app: str


class FakeConsumer:
    """Records how it was built; polls do nothing."""

    built: list[dict[str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.built.append(kwargs)
        self.closed = threading.Event()

    def poll_once(self, timeout_ms: int) -> None:
        self.closed.wait(timeout_ms / 1000)

    def rewind_to_committed(self) -> None:
        pass

    def close(self) -> None:
        self.closed.set()


class Projection:
    def __init__(self, placeholder_style: Callable[[str], str]) -> None:
        self.placeholder_style = placeholder_style

    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None:
        raise AssertionError("nothing is delivered here")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec("HOSP-A:collection")])
    return directory


def service_for(pki: Path, **settings: Any) -> DemoService:
    values = {"site_id": "HOSP-A", "pki_dir": pki, "kafka_bootstrap": "127.0.0.1:9092"}
    return DemoService(load_settings(DemoSettings, **{**values, **settings}), "the app")


def test_grpc_serves_the_api_with_health_over_mtls(pki: Path) -> None:
    service = service_for(pki)
    assert service.grpc is None
    running = service.start_grpc()
    try:
        assert service.grpc is running
        assert registered[-1] == ("the app", running.server)
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, "HOSP-A"))
        with secure_channel(f"127.0.0.1:{running.port}", credentials) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=5
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        service.runtime.stop()


def test_projection_consumer_is_wired_from_the_settings(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_runtime, "EnvelopeConsumer", FakeConsumer)
    service = service_for(pki, sqlite_path=tmp_path / "events.sqlite")
    tables: list[Any] = []
    consumer: Any = service.start_projection(
        "facts",
        contexts=["manufacturing", "release"],
        projection=Projection,
        consumer_name="demo-facts",
        sqlite_path=service.settings.side_sqlite_path("facts"),
        create_tables=tables.append,
    )
    try:
        built = FakeConsumer.built[-1]
        assert built["bootstrap"] == "127.0.0.1:9092"
        assert built["group_id"] == "v2v-intake-HOSP-A-facts"
        assert built["topics"] == ["v2v.manufacturing.events.v1", "v2v.release.events.v1"]
        assert built["apply"].placeholder_style is str
        assert isinstance(tables[0], sqlite3.Connection)
        assert (tmp_path / "events.facts.sqlite").is_file()
        assert [t.name for t in service.runtime._threads] == ["intake-facts-consumer"]
    finally:
        service.runtime.stop()
    assert consumer.closed.is_set()


def test_projection_group_can_be_chosen_and_postgres_uses_its_placeholders(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_runtime, "EnvelopeConsumer", FakeConsumer)
    monkeypatch.setattr(
        service_runtime.ServiceRuntime, "consumer_store", lambda self, *args: "store"
    )
    service = service_for(pki, postgres_dsn="postgresql://u:p@127.0.0.1:5433/db")
    service.start_projection(
        "units",
        contexts=["intake"],
        projection=Projection,
        consumer_name="demo-units",
        sqlite_path=None,
        create_tables=lambda connection: None,
        group_id="chosen",
    )
    service.runtime.stop()
    built = FakeConsumer.built[-1]
    assert (built["group_id"], built["store"]) == ("chosen", "store")
    assert built["apply"].placeholder_style is for_postgres


def test_relay_and_consumers_need_kafka(pki: Path) -> None:
    service = service_for(pki, kafka_bootstrap=None)
    with pytest.raises(ValueError, match="V2V_KAFKA_BOOTSTRAP is not set"):
        service.start_relay()


@dataclass
class Counted:
    rows: int


def _feed() -> service_runtime.FactsFeed[Counted]:
    def create(connection: Any) -> None:
        connection.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY)")

    def reader(query: Any) -> Counted:
        return Counted(len(query("SELECT id FROM seen", ())))

    return service_runtime.FactsFeed(
        name="facts",
        contexts=("intake",),
        projection=lambda style: lambda unit_of_work, delivered: None,
        consumer_name="demo-facts",
        sqlite_suffix="demo-facts",
        create_tables=create,
        reader=reader,
    )


def test_a_facts_feed_reads_its_store_next_to_the_event_store(tmp_path: Path) -> None:
    settings = load_settings(
        DemoSettings, site_id="HOSP-A", pki_dir=tmp_path, sqlite_path=tmp_path / "demo.sqlite"
    )
    facts = _feed().facts_for(settings, None)
    assert facts == Counted(0)
    assert (tmp_path / "demo.demo-facts.sqlite").is_file()


def test_without_a_store_a_facts_feed_gives_the_null_facts(tmp_path: Path) -> None:
    settings = load_settings(DemoSettings, site_id="HOSP-A", pki_dir=tmp_path)
    assert _feed().facts_for(settings, "nothing known") == "nothing known"
