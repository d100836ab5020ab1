"""The logistics service at LOGI-1 on PostgreSQL + Kafka (gRPC on a free port, relay, facts
consumer in a group of its own), over the test module's `pki` fixture."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from v2v_logistics.bootstrap import LogisticsService, bootstrap
from v2v_logistics.settings import LogisticsSettings
from v2v_platform.testing.infra import PostgresDatabase

LOGISTICS = "LOGI-1"


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[LogisticsService]:
    settings = LogisticsSettings(
        site_id=LOGISTICS,
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_relay()
    running.start_facts_consumer(group_id=f"logistics-it-{random.getrandbits(32):08x}")
    yield running
    running.stop()
