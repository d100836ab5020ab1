"""Services as separate processes for cross-service tests: start `python -m <module>` with its
V2V_* settings on free ports, wait until its gRPC health check serves, stop with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel


class ProcessExited(AssertionError):
    """A service process died; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    module: str
    popen: subprocess.Popen[bytes]
    log: Path
    grpc_port: int
    http_port: int
    env: dict[str, str]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-4000:]
            raise ProcessExited(f"{self.module} exited {self.popen.returncode}:\n{tail}")

    def healthy(self, pki: Path, as_site: str) -> bool:
        """True when the gRPC health check answers SERVING (mTLS as `as_site`)."""
        self.alive()
        credentials = channel_credentials(SiteTlsFiles.for_site(pki, as_site))
        with secure_channel(self.grpc_target, credentials) as channel:
            try:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=1
                )
            except grpc.RpcError:
                return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    def stop(self, timeout_s: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout=timeout_s)


def start_service(module: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Start `python -m module` with `env` on top of this process's environment, on free
    gRPC and HTTP ports; its output goes to `log_dir/<module>.log`."""
    grpc_port, http_port = free_port(), free_port()
    log = log_dir / f"{module}.log"
    settings = {
        **env,
        "V2V_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        "V2V_HTTP_PORT": str(http_port),
    }
    with log.open("ab") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**os.environ, **settings},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(module, popen, log, grpc_port, http_port, settings)


def restart_service(process: ServiceProcess) -> ServiceProcess:
    """The same service again on the same ports and settings (after `stop()`)."""
    with process.log.open("ab") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", process.module],
            env={**os.environ, **process.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return ServiceProcess(
        process.module, popen, process.log, process.grpc_port, process.http_port, process.env
    )


def fresh_database(dsn: str, name: str) -> str:
    """Drop and create database `name` next to `dsn`'s; returns its DSN."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn.rsplit("/", 1)[0] + f"/{name}"
