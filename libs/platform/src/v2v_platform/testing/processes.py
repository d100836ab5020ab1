"""Services as separate processes for cross-service tests, on the platform's `ServiceProcess`
(the same one the demo runner uses): start `python -m <module>` on free ports, wait until it
serves, stop with SIGTERM."""

from __future__ import annotations

from pathlib import Path

import psycopg

from v2v_platform.processes import ServiceProcess, free_ports

__all__ = ["ServiceProcess", "free_port", "fresh_database", "start_service"]


def free_port() -> int:
    return free_ports(1)[0]


def start_service(module: str, env: dict[str, str], log_dir: Path) -> ServiceProcess:
    """Start `python -m module` with `env` on top of this process's environment, on free
    gRPC and HTTP ports; its output goes to `log_dir/<module>.log`."""
    process = ServiceProcess(module, module, env, log_dir / f"{module}.log")
    process.start()
    return process


def fresh_database(dsn: str, name: str) -> str:
    """Drop and create database `name` next to `dsn`'s; returns its DSN."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return dsn.rsplit("/", 1)[0] + f"/{name}"
