"""A service's projection consumer verifies what it reads: `start_projection` gives it a gate on
the consortium key ring of the service's PKI directory, and does not start without one."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from v2v_platform import service_runtime
from v2v_platform.auth import Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.config import PublishingServiceSettings, load_settings
from v2v_platform.envelope import EnvelopeGate, SiteSigningKey
from v2v_platform.service_runtime import RuntimeService
from v2v_platform.testing.outbox_app import SPEC


class DemoSettings(PublishingServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


@dataclass
class DemoService(RuntimeService):
    context = "infusion"
    relay_spec = SPEC
    api = SimpleNamespace(SERVICE_NAME="v2v.demo.v1.Demo", REQUIRED_ROLES={}, register=None)
    settings: DemoSettings
    app: str


class FakeConsumer:
    """Records how it was built (no broker in a unit test); polls do nothing."""

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


def _start(pki: Path, tmp_path: Path) -> DemoService:
    values = {"site_id": "HOSP-A", "pki_dir": pki, "kafka_bootstrap": "127.0.0.1:9092"}
    settings = load_settings(DemoSettings, **values, sqlite_path=tmp_path / "events.sqlite")
    service = DemoService(settings, "the app")
    service.start_projection(
        "facts",
        contexts=["release"],
        projection=lambda style: lambda unit, delivered: None,
        consumer_name="demo-facts",
        sqlite_path=settings.side_sqlite_path("facts"),
        create_tables=lambda connection: None,
    )
    return service


def test_the_consumer_verifies_against_the_pki_key_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_runtime, "EnvelopeConsumer", FakeConsumer)
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec("HOSP-A:collection,infusion"), parse_site_spec("QC-1:qc")])
    service = _start(pki, tmp_path)
    service.runtime.stop()
    gate = FakeConsumer.built[-1]["gate"]
    assert isinstance(gate, EnvelopeGate)
    qc_key = SiteSigningKey.load("QC-1", pki / "sites" / "QC-1" / "signing.key")
    assert qc_key.key_id in gate.keys
    assert gate.keys.roles_of("QC-1") == {Role.QC}


def test_without_a_key_ring_no_consumer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_runtime, "EnvelopeConsumer", FakeConsumer)
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec("HOSP-A:collection,infusion")])
    (pki / "signing-keys.json").unlink()
    built = len(FakeConsumer.built)
    with pytest.raises(FileNotFoundError, match="no consortium key ring"):
        _start(pki, tmp_path)
    assert len(FakeConsumer.built) == built
