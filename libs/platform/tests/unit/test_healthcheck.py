"""`python -m v2v_platform.healthcheck`: gRPC health over mTLS for compose and Kubernetes."""

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from kafka.errors import KafkaConnectionError

from v2v_platform.auth import SiteTlsFiles
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.grpc_service import RunningServer, build_server
from v2v_platform.health import LIVENESS_SERVICE, ServiceHealth
from v2v_platform.healthcheck import check, main
from v2v_platform.testing.processes import free_port

SERVICE = "v2v.test.Probe"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    init_pki(directory, [parse_site_spec(s) for s in ("HOSP-A:collection", "GMP-B:qc")])
    return directory


@pytest.fixture
def server(pki: Path) -> Iterator[RunningServer]:
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-B"),
        required_roles={},
        register=lambda _server: None,
        service_names=[SERVICE],
    )
    yield running
    running.stop(0)


def test_serving_exits_0(
    pki: Path, server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{server.port}"
    assert main([target, "--pki", str(pki), "--site", "HOSP-A"]) == 0
    assert main([target, "--pki", str(pki), "--site", "HOSP-A", "--service", SERVICE]) == 0
    assert capsys.readouterr().err == ""


def test_not_serving_exits_1_with_the_status(
    pki: Path, server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server.health.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    target = f"127.0.0.1:{server.port}"
    assert main([target, "--pki", str(pki), "--site", "HOSP-A", "--service", SERVICE]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err
    server.health.enter_graceful_shutdown()
    assert main([target, "--pki", str(pki), "--site", "HOSP-A"]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_unknown_service_exits_1(
    pki: Path, server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"127.0.0.1:{server.port}"
    assert main([target, "--pki", str(pki), "--site", "HOSP-A", "--service", "v2v.Nope"]) == 1
    assert "NOT_FOUND" in capsys.readouterr().err


def test_nothing_listening_exits_1(pki: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{free_port()}"
    assert main([target, "--pki", str(pki), "--site", "HOSP-A", "--timeout", "1"]) == 1
    assert "UNAVAILABLE" in capsys.readouterr().err


def test_a_certificate_from_another_ca_is_refused(server: RunningServer, tmp_path: Path) -> None:
    init_pki(tmp_path, [parse_site_spec("HOSP-A:collection")])
    healthy, message = check(
        f"127.0.0.1:{server.port}", SiteTlsFiles.for_site(tmp_path, "HOSP-A"), timeout_s=2
    )
    assert not healthy
    assert "UNAVAILABLE" in message


def test_server_name_is_checked_against_the_certificate(pki: Path, server: RunningServer) -> None:
    tls = SiteTlsFiles.for_site(pki, "HOSP-A")
    target = f"127.0.0.1:{server.port}"
    assert check(target, tls, server_name="localhost") == (True, "SERVING")
    healthy, _ = check(target, tls, server_name="not-in-the-cert.example", timeout_s=2)
    assert not healthy


def test_missing_pki_and_bad_arguments_exit_1(
    pki: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("V2V_PKI_DIR", raising=False)
    monkeypatch.delenv("V2V_SITE_ID", raising=False)
    assert main(["127.0.0.1:1"]) == 1
    assert "--pki" in capsys.readouterr().err
    assert main(["127.0.0.1:1", "--pki", str(tmp_path), "--site", "HOSP-A"]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["127.0.0.1:1", "--pki", str(pki), "--site", "hosp-a"]) == 1
    assert "invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--no-such-option"])
    assert exited.value.code == 1


def test_module_reads_the_pki_and_site_from_the_environment(
    pki: Path, server: RunningServer
) -> None:
    env = {"V2V_PKI_DIR": str(pki), "V2V_SITE_ID": "HOSP-A", "PATH": ""}
    command = [sys.executable, "-m", "v2v_platform.healthcheck", f"127.0.0.1:{server.port}"]
    ok = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stderr) == (0, "")
    server.health.enter_graceful_shutdown()
    down = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1
    assert "NOT_SERVING" in down.stderr


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_not_serving_prints_the_services_reasons_and_liveness_is_asked_apart(
    pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = Clock()
    health = ServiceHealth(60, clock)
    consumer = health.part("facts-consumer")
    relay = health.part("relay")
    running = build_server(
        tls=SiteTlsFiles.for_site(pki, "GMP-B"),
        required_roles={},
        register=lambda _server: None,
        service_names=[SERVICE],
        health_report=health.report,
    )
    target = f"127.0.0.1:{running.port}"
    asks = [target, "--pki", str(pki), "--site", "HOSP-A"]
    try:
        assert (main(asks), main([*asks, "--live"])) == (0, 0)
        consumer.waiting(KafkaConnectionError("connection refused"))
        clock.now = 75
        relay.progressed()
        assert main(asks) == 1
        stall = "facts-consumer: no progress for 75 s: KafkaConnectionError: connection refused"
        assert (
            capsys.readouterr().err == f"healthcheck: not healthy: {target}: NOT_SERVING: {stall}\n"
        )
        assert main([*asks, "--service", SERVICE]) == 1
        assert main([*asks, "--live"]) == 0  # an outage waited out: not a reason to restart
        relay.stopped("the broker refused an event for good")
        capsys.readouterr()
        assert main([*asks, "--live"]) == 1
        assert capsys.readouterr().err == (
            f"healthcheck: not healthy: {target} ({LIVENESS_SERVICE}): NOT_SERVING:"
            f" {stall}; relay stopped: the broker refused an event for good\n"
        )
        with pytest.raises(SystemExit) as exited:
            main([*asks, "--live", "--service", SERVICE])
        assert exited.value.code == 1
    finally:
        running.stop(0)
