"""The demo's and the cross-service tests' readiness wait asks GET /ready as well as gRPC."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from v2v_platform.auth import SiteTlsFiles
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.grpc_service import build_server
from v2v_platform.health import ServiceHealth
from v2v_platform.health_http import add_health_routes
from v2v_platform.processes import ServiceProcess, free_ports
from v2v_platform.service_main import HttpServer
from v2v_platform.testing.producing import eventually


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_process_whose_ready_endpoint_answers_503_is_not_healthy(tmp_path: Path) -> None:
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection")])
    clock = Clock()
    health = ServiceHealth(60, clock)
    consumer = health.part("facts-consumer")
    app = FastAPI()
    add_health_routes(app, health)
    grpc_port, http_port = free_ports(2)
    grpc = build_server(  # health always SERVING: only /ready can tell
        tls=SiteTlsFiles.for_site(tmp_path, "HOSP-A"),
        required_roles={},
        register=lambda _server: None,
        service_names=[],
        address=f"127.0.0.1:{grpc_port}",
    )
    http = HttpServer(app, "127.0.0.1", http_port, "test-http")
    process = ServiceProcess(
        "demo", "v2v_demo", {}, tmp_path / "demo.log", grpc_port=grpc_port, http_port=http_port
    )
    assert not process.http_ready()  # nothing listening yet
    http.start()
    try:
        eventually(process.http_listening, "HTTP to listen")
        assert process.healthy(tmp_path, "HOSP-A")
        clock.now = 61
        assert process.http_listening()
        assert not process.http_ready()
        assert not process.healthy(tmp_path, "HOSP-A")
        consumer.progressed()
        assert process.healthy(tmp_path, "HOSP-A")
    finally:
        http.stop()
        grpc.stop(0)
