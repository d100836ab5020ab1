"""Resolve the real infrastructure that integration tests run against: Kafka and PostgreSQL.

Resolution order for each service:

1. an explicit address in the environment (``V2V_KAFKA_BOOTSTRAP`` / ``V2V_POSTGRES_DSN``);
2. testcontainers, when a Docker engine answers;
3. the project's own local scripts (``infra/kafka/kafka.sh up``, ``infra/postgres/pg.sh up``),
   which run Apache Kafka's released jars and the distribution's PostgreSQL binaries.

``V2V_INFRA=docker`` or ``V2V_INFRA=local`` restricts step 2/3 to one of them. A process the
local scripts had to start is stopped again by :meth:`Resolved.close` unless ``V2V_KEEP_INFRA=1``
(one that was already running is always left running).

:func:`start_secure_local_kafka` starts a broker of its own (its own state directory) with the
deployment's authenticated, encrypted listener (SASL_SSL + SCRAM-SHA-512, ACLs enforced),
always through the local script: the one integration test that needs it stops it again.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

KAFKA_ENV = "V2V_KAFKA_BOOTSTRAP"
POSTGRES_ENV = "V2V_POSTGRES_DSN"
KEEP_ENV = "V2V_KEEP_INFRA"
MODE_ENV = "V2V_INFRA"
KAFKA_IMAGE = os.environ.get("V2V_KAFKA_IMAGE", "confluentinc/cp-kafka:7.9.0")
POSTGRES_IMAGE = os.environ.get("V2V_POSTGRES_IMAGE", "postgres:16-alpine")
DOCKER_PING_TIMEOUT_S = 3.0
SCRIPT_UP_TIMEOUT_S = 900.0  # a cold start may download the Kafka jars or install PostgreSQL
SCRIPT_DOWN_TIMEOUT_S = 120.0
OUTPUT_TAIL_LINES = 25


class InfraUnavailable(RuntimeError):
    """Nothing could provide the service; the message says how to provide it."""


@dataclass(frozen=True)
class Resolved:
    """An address to a running service, how it was obtained, and how to release it."""

    address: str
    how: str
    stop: Callable[[], None] | None = None

    def close(self) -> None:
        if self.stop is not None:
            self.stop()


@dataclass(frozen=True)
class Service:
    """What differs between Kafka and PostgreSQL in the resolution."""

    name: str
    env_var: str
    example: str
    script: str  # relative to the repository root
    make_target: str
    local_requirements: str
    container: Callable[[], Resolved]


# ---------------------------------------------------------------- public entry points


def resolve_kafka(repo_root: Path | None = None) -> Resolved:
    """A Kafka bootstrap address ``host:port``."""
    return resolve(KAFKA, repo_root)


def resolve_postgres(repo_root: Path | None = None) -> Resolved:
    """A PostgreSQL DSN of a role allowed to create databases."""
    return resolve(POSTGRES, repo_root)


def resolve(service: Service, repo_root: Path | None = None) -> Resolved:
    explicit = os.environ.get(service.env_var, "").strip()
    if explicit:
        return Resolved(explicit, f"${service.env_var}")
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    tried: list[str] = []
    if mode in ("auto", "docker"):
        resolved = _try_container(service, tried)
        if resolved is not None:
            return resolved
    if mode in ("auto", "local"):
        root = repo_root or find_repo_root()
        if root is None:
            tried.append(f"local script: {service.script} not found above {Path(__file__).parent}")
        else:
            resolved = _try_local(service, root, tried)
            if resolved is not None:
                return resolved
    raise InfraUnavailable(_advice(service, mode, tried))


def find_repo_root(*starts: Path) -> Path | None:
    """The nearest directory at or above any start (default: this file) holding ``infra/``."""
    for start in (*starts, Path(__file__)):
        for directory in (start.resolve(), *start.resolve().parents):
            if (directory / KAFKA.script).is_file() or (directory / POSTGRES.script).is_file():
                return directory
    return None


def docker_available(timeout_s: float = DOCKER_PING_TIMEOUT_S) -> bool:
    """Whether a Docker engine answers a ping (as testcontainers would reach it)."""
    try:
        docker: Any = importlib.import_module("docker")
        client = docker.from_env(timeout=timeout_s)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no usable engine"
        return False


def redact(address: str) -> str:
    """The address with any password masked, for printing."""
    address = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", address)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", address)


# ---------------------------------------------------------------- testcontainers


def _try_container(service: Service, tried: list[str]) -> Resolved | None:
    if not docker_available():
        tried.append("testcontainers: no Docker engine answered")
        return None
    try:
        return service.container()
    except Exception as error:  # noqa: BLE001 - reported in the failure message, then fall back
        tried.append(f"testcontainers: starting the {service.name} container failed: {error!r}")
        return None


def _kafka_container() -> Resolved:
    module: Any = importlib.import_module("testcontainers.community.kafka")
    container = module.KafkaContainer(KAFKA_IMAGE).with_kraft()
    for key, value in {
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
        "KAFKA_NUM_PARTITIONS": "6",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    }.items():
        container.with_env(key, value)
    container.start(timeout=120)
    return Resolved(
        str(container.get_bootstrap_server()), f"testcontainers ({KAFKA_IMAGE})", container.stop
    )


def _postgres_container() -> Resolved:
    module: Any = importlib.import_module("testcontainers.community.postgres")
    container = module.PostgresContainer(
        POSTGRES_IMAGE, username="v2v", password="v2v", dbname="v2v", driver=None
    )
    container.with_command(
        "postgres -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        " -c max_connections=200"
    )
    container.start()
    return Resolved(
        str(container.get_connection_url()), f"testcontainers ({POSTGRES_IMAGE})", container.stop
    )


# ---------------------------------------------------------------- local scripts


def _try_local(service: Service, root: Path, tried: list[str]) -> Resolved | None:
    script = root / service.script
    if not script.is_file():
        tried.append(f"local script: {script} does not exist")
        return None
    was_running = _run(script, "status", timeout_s=60).returncode == 0
    result = _run(script, "up", timeout_s=SCRIPT_UP_TIMEOUT_S)
    address = _last_line(result.stdout)
    if result.returncode != 0 or not address:
        tried.append(
            f"local script: `{service.script} up` exited {result.returncode};"
            f" its output ended with:\n{_indent(_tail(result))}"
        )
        return None
    if was_running:
        return Resolved(address, f"{service.script} (already running; left running)")
    if os.environ.get(KEEP_ENV) == "1":
        return Resolved(address, f"{service.script} (started; kept running, {KEEP_ENV}=1)")
    return Resolved(
        address, f"{service.script} (started; stopped at the end)", lambda: _stop_local(script)
    )


def _stop_local(script: Path, env: dict[str, str] | None = None) -> None:
    _run(script, "down", timeout_s=SCRIPT_DOWN_TIMEOUT_S, env=env)


def _run(
    script: Path, command: str, *, timeout_s: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["bash", str(script), command],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as error:
        stderr = _text(error.stderr) + f"\n(timed out after {timeout_s}s)"
        return subprocess.CompletedProcess(error.cmd, 124, _text(error.stdout), stderr)


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _last_line(stdout: str) -> str:
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(result: subprocess.CompletedProcess[str]) -> str:
    lines = (result.stderr + result.stdout).strip().splitlines()
    return "\n".join(lines[-OUTPUT_TAIL_LINES:]) or "(no output)"


def _indent(text: str, prefix: str = "      ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


def _advice(service: Service, mode: str, tried: Sequence[str]) -> str:
    how = [
        f"  - set {service.env_var} (e.g. {service.env_var}={service.example})"
        " to use a running one,",
        "  - or start a Docker engine (testcontainers is then used),",
        f"  - or {service.local_requirements}, then run `make {service.make_target}`"
        f" ({service.script} up).",
    ]
    lines = [
        f"No {service.name} available for the integration tests ({MODE_ENV}={mode}).",
        "Provide one:",
        *how,
        "What was tried:",
        *(f"  - {attempt}" for attempt in tried),
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- a secured local broker

ADMIN_USER = "admin"


def start_secure_local_kafka(
    pki_dir: Path, state_dir: Path, admin_password: str, repo_root: Path | None = None
) -> Resolved:
    """A broker of its own under `state_dir` (``kafka.sh up`` with V2V_KAFKA_TLS_DIR): its
    certificate issued by the consortium CA of `pki_dir`, one SASL_SSL listener (SCRAM-SHA-512;
    super user ``admin`` with `admin_password`), ACLs enforced. `Resolved.close` stops it.
    InfraUnavailable with the script's output when it does not start."""
    from v2v_platform.kafka_broker import issue_broker_tls

    root = repo_root or find_repo_root()
    if root is None:
        raise InfraUnavailable(f"{KAFKA.script} not found above {Path(__file__).parent}")
    script = root / KAFKA.script
    tls = issue_broker_tls(pki_dir, state_dir / "tls")
    env = {
        **os.environ,
        "V2V_STATE_DIR": str(state_dir.resolve()),
        "V2V_KAFKA_TLS_DIR": str(tls.keystore.parent.resolve()),
        "V2V_KAFKA_ADMIN_PASSWORD": admin_password,
    }
    result = _run(script, "up", timeout_s=SCRIPT_UP_TIMEOUT_S, env=env)
    address = _last_line(result.stdout)
    if result.returncode != 0 or not address:
        raise InfraUnavailable(
            f"`{KAFKA.script} up` with V2V_KAFKA_TLS_DIR exited {result.returncode}"
            f" ({KAFKA.local_requirements}); its output ended with:\n{_indent(_tail(result))}"
        )
    how = f"{KAFKA.script} (SASL_SSL, own state directory; stopped at the end)"
    return Resolved(address, how, lambda: _stop_local(script, env))


# ---------------------------------------------------------------- PostgreSQL databases


@dataclass(frozen=True)
class PostgresDatabase:
    """One database on the resolved server, with everything a client needs to reach it."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    dsn: str


def database_on(server_dsn: str, dbname: str) -> PostgresDatabase:
    """Connection details for ``dbname`` on the server that ``server_dsn`` points to."""
    from psycopg.conninfo import conninfo_to_dict

    parts = conninfo_to_dict(server_dsn)
    host = str(parts.get("host") or "127.0.0.1")
    port = int(parts.get("port") or 5432)
    user = str(parts.get("user") or "postgres")
    password = str(parts.get("password") or "")
    netloc_host = f"[{host}]" if ":" in host else host
    dsn = (
        f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{netloc_host}:{port}/{quote(dbname, safe='')}"
    )
    return PostgresDatabase(host, port, user, password, dbname, dsn)


def create_database(server_dsn: str, prefix: str = "v2v_test") -> PostgresDatabase:
    """Create a fresh, uniquely named database on the server."""
    import psycopg
    from psycopg import sql

    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return database_on(server_dsn, dbname)


def drop_database(server_dsn: str, dbname: str) -> None:
    """Drop the database, disconnecting whoever is still connected to it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


# ---------------------------------------------------------------- the services

KAFKA = Service(
    name="Kafka broker",
    env_var=KAFKA_ENV,
    example="127.0.0.1:9092",
    script="infra/kafka/kafka.sh",
    make_target="kafka-up",
    local_requirements=(
        "install Java 17+ and Maven (apt-get install -y openjdk-17-jre-headless maven)"
    ),
    container=_kafka_container,
)

POSTGRES = Service(
    name="PostgreSQL server",
    env_var=POSTGRES_ENV,
    example="postgresql://v2v:v2v@127.0.0.1:5432/v2v",
    script="infra/postgres/pg.sh",
    make_target="pg-up",
    local_requirements="install the PostgreSQL server (apt-get install -y postgresql)",
    container=_postgres_container,
)
