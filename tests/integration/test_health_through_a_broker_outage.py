"""Health through a broker outage, with nothing to consume (issue 12, part 3).

kafka-python returns empty polls while the broker is down, so an idle consumer used to look as
if it progressed: the service stayed SERVING while no fact could reach it. The infusion service
idles with its facts consumer assigned; the broker stops; within the stall bound plus one
contact check the service reports not ready, naming its consumer; the broker comes back and the
service is ready again.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from v2v_infusion.adapters.facts_projection import FACTS_FEED
from v2v_infusion.bootstrap import bootstrap
from v2v_infusion.settings import InfusionSettings
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.envelope.headers import topic_for
from v2v_platform.relay import ensure_topics
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_simulator.broker import LocalBroker

pytestmark = pytest.mark.integration
WARD = "HOSP-A"
STALL_AFTER_S = 3.0


def status(client: TestClient) -> tuple[int, Any]:
    answer = client.get("/ready")
    return answer.status_code, answer.json()


def test_an_idle_consumer_reports_a_broker_outage_and_recovers(
    tmp_path: Path, postgres_database: PostgresDatabase
) -> None:
    broker = LocalBroker(tmp_path / "broker")
    kafka = broker.up()
    pki = tmp_path / "pki"
    init_pki(pki, [parse_site_spec(f"{WARD}:collection,infusion")])
    ensure_topics(kafka, [topic_for(c) for c in ("manufacturing", "release", "intake")], 6)
    settings = InfusionSettings(
        site_id=WARD,
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka,
        stall_after_s=STALL_AFTER_S,
    )
    service = bootstrap(settings)
    try:
        service.start_grpc("127.0.0.1:0")
        consumer = service.start_facts_consumer(group_id=f"outage-{random.getrandbits(32):08x}")
        assert consumer is not None
        eventually(consumer.assignment, "the facts consumer to be assigned its partitions")
        client = TestClient(service.http_app, raise_server_exceptions=False)
        eventually(lambda: status(client)[0] == 200, "the idle service to be ready")

        broker.down()
        eventually(lambda: status(client)[0] == 503, "not ready in the outage")
        assert f"{FACTS_FEED.name}-consumer" in str(status(client)[1])

        assert broker.up() == kafka
        eventually(lambda: status(client)[0] == 200, "ready again after the outage", 90)
    finally:
        service.stop()
        broker.down()
