"""Live chain integrity on the real broker and PostgreSQL (issue 16): a generated history and
the signed checkpoints its services' relays would publish (`v2v_testkit.checkpointed`, keyed by
site id on `v2v.checkpoints.v1`) are consumed by the projection core; `GET /v1/chains/{coi}/
integrity` with a site token shows each stream of a chain the site takes part in proven by its
service's latest checkpoint; another site gets 404; after a restart the checkpoints are there
before anything new is consumed (rebuilt from the projection's store).

Other tests share the broker and the checkpoint topic: their checkpoints are signed by keys this
run's key ring does not hold (quarantined, never used), and everything here is checked for this
history's COIs only (its seed is random, so its keys and COIs are its own).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.checkpoints.envelopes import CHECKPOINT_TOPIC
from v2v_platform.envelope import decode
from v2v_platform.relay import ensure_topics
from v2v_platform.relay.topics import V2V_TOPICS
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_testkit.audit import trust_keys
from v2v_testkit.checkpointed import with_checkpoints
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = pytest.mark.integration
SITES = (
    "HOSP-A:collection,infusion",
    "HOSP-C:collection,infusion",
    "HOSP-Z:collection,infusion",  # takes part in no chain of the history
    "AUDIT-1:auditor",
    "PROJ-1:auditor",
)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def history(pki: Path) -> GeneratedHistory:
    generated = generate_history(random.randrange(1, 100_000), 2)
    trust_keys(pki, generated.keys)
    return generated


@pytest.fixture
def services(kafka_bootstrap: str) -> Iterator[list[ProjectionService]]:
    ensure_topics(kafka_bootstrap, list(V2V_TOPICS), 6)
    running: list[ProjectionService] = []
    yield running
    for service in running:
        service.stop()


def produce(kafka: str, by_topic: dict[str, list[bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    try:
        for topic, values in by_topic.items():
            for value in values:
                envelope = decode(value)
                key = envelope.site_id if topic == CHECKPOINT_TOPIC else envelope.coi
                producer.send(topic, key=key.encode(), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def get_integrity(service: ProjectionService, pki: Path, site: str, coi: str) -> Any:
    token = issue_site_token(pki, site)
    with TestClient(service.http_app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        return client.get(f"/v1/chains/{coi}/integrity", headers=headers)


def proven(answer: dict[str, Any]) -> bool:
    return bool(answer["streams"]) and all(
        s["checkpoint"] is not None
        and s["checkpoint"]["covers_head"]
        and s["checkpoint"]["proof_verified"]
        for s in answer["streams"]
    )


def test_the_integrity_of_a_chain_shows_its_checkpoints_over_http_and_after_a_restart(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    history: GeneratedHistory,
    services: list[ProjectionService],
) -> None:
    settings = ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=f"projection-integrity-{random.getrandbits(32):08x}",
        max_poll_records=200,
    )
    published = with_checkpoints(history.by_topic, history.signers)
    produce(kafka_bootstrap, published)
    service = bootstrap(settings)
    services.append(service)
    service.start_consumer()
    coi = history.cois[0]
    events = sum(1 for values in history.by_topic.values() for v in values if decode(v).coi == coi)

    def answered() -> dict[str, Any] | None:
        if service.projection.chain(coi) is None:
            return None
        found: dict[str, Any] = get_integrity(service, pki, "AUDIT-1", coi).json()
        return found if found["events"] == events and proven(found) else None

    audited = eventually(answered, "the chain proven by its services' checkpoints")
    assert audited["clean"] and audited["breaks"] == []
    view = service.projection.chain(coi)
    assert view is not None
    site = view["treating_site_id"]
    response = get_integrity(service, pki, site, coi)
    assert response.status_code == 200
    assert response.json()["streams"] == audited["streams"]
    assert get_integrity(service, pki, "HOSP-Z", coi).status_code == 404

    service.stop()
    services.remove(service)
    restarted = bootstrap(settings)  # from its store: nothing consumed yet
    services.append(restarted)
    again = get_integrity(restarted, pki, site, coi).json()
    assert again["streams"] == audited["streams"]
    assert proven(again)
