"""One service as its own process, for the demo runner and the cross-service tests:
`python -m <module>` with V2V_* settings, in its own session (so Ctrl-C at the terminal
reaches only the runner, which stops it), output to its own log. Stopped with SIGTERM (then
SIGKILL after a grace period); restarted on the same ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel

STOP_GRACE_S = 20.0
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
LOG_TAIL_CHARS = 3000


class ServiceDied(RuntimeError):
    """A service process exited on its own; the message ends with its log's tail."""


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all probed at once: closing a probe before the next one
    could hand the same port out twice, and gRPC servers share a port with SO_REUSEPORT)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass
class ServiceProcess:
    """`name` is unique in a system (e.g. `intake-HOSP-A`); `module` is what runs."""

    name: str
    module: str
    env: dict[str, str]
    log: Path
    grpc_port: int = 0  # chosen before the first start (see `System`), kept on restarts
    http_port: int = 0
    popen: subprocess.Popen[bytes] | None = None
    terminated: bool = False

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        if not self.grpc_port or not self.http_port:
            self.grpc_port, self.http_port = free_ports(2)
        settings = {
            **os.environ,
            **self.env,
            "V2V_GRPC_ADDRESS": self.grpc_target,
            "V2V_HTTP_PORT": str(self.http_port),
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.terminated = False
        with self.log.open("ab") as sink:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=settings,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise ServiceDied(
                f"{self.name} exited with status {self.popen.returncode}; end of {self.log}:\n"
                f"{self.log_tail()}"
            )

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return "(no log)"

    def healthy(self, pki: Path, as_site: str) -> bool:
        """Whether it is ready: its HTTP GET /ready answers 200 (services open HTTP last, after
        their relay and consumers) and its gRPC health check SERVING, both true only while its
        relay and consumers are alive and progressing (`v2v_platform.health`). ServiceDied if
        it exited."""
        self.check_alive()
        if not self.http_ready():
            return False
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, as_site))
        with secure_channel(self.grpc_target, credentials) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def terminate(self) -> None:
        """Ask it to stop (one SIGTERM: a second one could arrive while the interpreter
        finalizes, when the default action would kill it) without waiting."""
        if self.popen is not None and self.popen.poll() is None and not self.terminated:
            self.popen.send_signal(signal.SIGTERM)
            self.terminated = True

    def http_ready(self) -> bool:
        """Whether GET /ready answers 200 (503 while a part stopped or stalls)."""
        try:
            with DIRECT.open(f"{self.http_base}/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:  # refused, timed out, or an HTTPError (503)
            return False

    def http_listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM, wait; SIGKILL to its own process group after `grace_s`. Its exit status."""
        popen = self.popen
        if popen is None:
            return None
        if popen.poll() is None:
            self.terminate()
            try:
                popen.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        return popen.returncode
