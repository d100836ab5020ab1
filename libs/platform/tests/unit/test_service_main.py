"""The one serve loop: settings, tracing, wiring, start order, HTTP, SIGTERM, clean stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from grpc_health.v1.health import HealthServicer

from v2v_platform import service_main, telemetry
from v2v_platform.config import ConfigurationError, SiteServiceSettings
from v2v_platform.grpc_service import RunningServer


class DemoSettings(SiteServiceSettings):
    grpc_address: str = "127.0.0.1:0"
    http_port: int = 0


@dataclass
class DemoService:
    settings: DemoSettings
    calls: list[str] = field(default_factory=list)
    fail_grpc: bool = False
    http_app: FastAPI = field(default_factory=FastAPI)

    def __post_init__(self) -> None:
        self.http_app.get("/ping")(lambda: {"pong": True})

    def start_grpc(self) -> RunningServer:
        if self.fail_grpc:
            raise OSError("could not bind gRPC server")
        self.calls.append("grpc")
        return RunningServer(server=None, port=50099, health=HealthServicer())

    def start_relay(self) -> object:
        self.calls.append("relay")
        return object()

    def start_consumer(self) -> None:
        self.calls.append("consumer")

    def stop(self) -> None:
        self.calls.append("stop")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[int]:
    port = free_port()
    monkeypatch.setenv("V2V_SITE_ID", "HOSP-A")
    monkeypatch.setenv("V2V_PKI_DIR", str(tmp_path))
    monkeypatch.setenv("V2V_HTTP_PORT", str(port))
    monkeypatch.delenv("V2V_SPAN_EXPORTER", raising=False)
    traced: list[str] = []
    monkeypatch.setattr(telemetry, "setup_tracing", lambda name, exporter: traced.append(name))
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    yield port
    signal.signal(signal.SIGTERM, handlers[0])
    signal.signal(signal.SIGINT, handlers[1])
    assert traced in ([], ["v2v-demo-HOSP-A"])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
    return body


def test_serves_until_sigterm_then_stops_everything(
    environment: int, caplog: pytest.LogCaptureFixture
) -> None:
    services: list[DemoService] = []
    served: list[bytes] = []

    def bootstrap(settings: DemoSettings) -> DemoService:
        services.append(DemoService(settings))
        return services[0]

    def start(service: DemoService) -> None:
        service.start_consumer()

        def probe_then_terminate() -> None:
            for _ in range(100):
                try:
                    served.append(_get(f"http://127.0.0.1:{environment}/ping"))
                    break
                except OSError:
                    threading.Event().wait(0.05)
            os.kill(os.getpid(), signal.SIGTERM)

        threading.Thread(target=probe_then_terminate, daemon=True).start()

    with caplog.at_level(logging.INFO, logger="v2v.demo"):
        service_main.serve("demo", DemoSettings, bootstrap, start, note=" (see /ping)")
    assert services[0].calls == ["grpc", "relay", "consumer", "stop"]
    assert served == [b'{"pong":true}']
    assert (
        f"demo HOSP-A: gRPC on port 50099, HTTP on 127.0.0.1:{environment} (see /ping)"
        in caplog.messages
    )
    assert caplog.messages[-1] == "stopped"


def test_a_failed_start_still_stops_the_service(environment: int) -> None:
    service: list[DemoService] = []

    def bootstrap(settings: DemoSettings) -> DemoService:
        service.append(DemoService(settings, fail_grpc=True))
        return service[0]

    with pytest.raises(OSError, match="could not bind"):
        service_main.serve("demo", DemoSettings, bootstrap, lambda s: None)
    assert service[0].calls == ["stop"]


def test_bad_settings_exit_before_anything_is_wired(
    environment: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("V2V_SITE_ID", "not a site")

    def bootstrap(settings: DemoSettings) -> Any:
        raise AssertionError("must not be wired")

    with pytest.raises(ConfigurationError) as raised:
        service_main.serve("demo", DemoSettings, bootstrap, lambda s: None)
    assert raised.value.code == 2
    assert "V2V_SITE_ID: Value error, site id 'not a site' is invalid" in capsys.readouterr().err


def test_stop_on_signals_sets_the_event(environment: int) -> None:
    stop = service_main.stop_on_signals(logging.getLogger("v2v.demo"))
    assert not stop.is_set()
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.wait(5)


def test_http_server_stop_is_safe_before_start() -> None:
    http = service_main.HttpServer(FastAPI(), "127.0.0.1", free_port(), "demo-http")
    http.stop()
    assert http.server.should_exit
    assert not http.thread.is_alive()
