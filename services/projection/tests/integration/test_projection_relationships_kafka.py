"""Who sees a chain, on real Kafka + PostgreSQL (issue 13): HOSP-A's patient's chain, with a
bedside scan HOSP-C had refused against its (guessable) COI, and HOSP-A's bag received and
infused again at HOSP-C. HOSP-C, which signed facts naming the COI, reads nothing of the chain
through any gRPC method or HTTP route; HOSP-A reads it with a critical `double-infusion` alert
and the `unrelated-author` alerts that say who tried.

Other tests share the broker and its topics: the COI is random, so its records are its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v.projection.v1 import projection_service_pb2_grpc as pb_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.ids import issue_coi
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_testkit.audit import (
    OTHER_HOSPITAL,
    PATIENT_SITE,
    RELATED_SITES,
    HandWrittenChain,
    enrolled_to_infused,
    infuse,
    receive,
    refused_bedside_scan,
    trust_keys,
)
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

pytestmark = pytest.mark.integration
SITES = (
    f"{PATIENT_SITE}:collection,infusion",
    f"{OTHER_HOSPITAL}:collection,infusion",
    "AUDIT-1:auditor",
    "PROJ-1:auditor",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("relationships") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def attacked(pki: Path) -> HandWrittenChain:
    writer = EnvelopeWriter(random.randrange(1, 100_000))
    trust_keys(pki, writer.keys)  # the projection verifies the chain against the PKI's ring
    coi = str(issue_coi("A1234", 25, random.randrange(1, 999_999)))
    chain = enrolled_to_infused(writer, coi, datetime(2025, 3, 1, 8, tzinfo=UTC))
    refused_bedside_scan(chain, OTHER_HOSPITAL, 121)
    product = chain.products[0]
    receive(chain, OTHER_HOSPITAL, product, 140)
    infuse(chain, OTHER_HOSPITAL, product, 141)
    return chain


@pytest.fixture
def service(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[ProjectionService]:
    settings = ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=f"projection-rel-{random.getrandbits(32):08x}",
    )
    running = bootstrap(settings)
    running.start_grpc("127.0.0.1:0")
    running.start_consumer()
    running.start_alert_hub(interval_s=0.1)
    yield running
    running.stop()


def produce(kafka: str, chain: HandWrittenChain) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    try:
        for topic, value in chain.records:
            producer.send(topic, key=chain.coi.encode(), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def stub(pki: Path, site: str, port: int) -> Any:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    channel = secure_channel(f"127.0.0.1:{port}", credentials, server_name="localhost")
    return pb_grpc.ChainQueryServiceStub(channel)


def not_found(call: Any) -> bool:
    try:
        result = call()
        if hasattr(result, "__next__"):
            next(result)
    except grpc.RpcError as error:
        return bool(error.code() == grpc.StatusCode.NOT_FOUND)
    return False


def test_a_site_that_only_signed_facts_about_a_chain_reads_none_of_it(
    pki: Path, kafka_bootstrap: str, attacked: HandWrittenChain, service: ProjectionService
) -> None:
    coi = attacked.coi
    produce(kafka_bootstrap, attacked)

    def folded() -> bool:
        taken: int = service.projection.read(lambda fold: fold.event_count(coi))
        return taken == len(attacked.records)

    eventually(folded, "the chain to be folded")
    assert service.grpc is not None
    port = service.grpc.port

    stranger = stub(pki, OTHER_HOSPITAL, port)
    assert not_found(lambda: stranger.GetChain(pb.GetChainRequest(coi=coi), timeout=10))
    custody = pb.GetCustodyTimelineRequest(coi=coi)
    assert not_found(lambda: stranger.GetCustodyTimeline(custody, timeout=10))
    watch = pb.WatchAlertsRequest(coi=coi, include_existing=True)
    assert not_found(lambda: stranger.WatchAlerts(watch, timeout=10))
    listed = stranger.ListChains(pb.ListChainsRequest(page_size=1000), timeout=10)
    assert coi not in [summary.coi for summary in listed.chains]
    assert stranger.GetKpis(pb.GetKpisRequest(), timeout=10).consortium.chains == len(listed.chains)

    chain = stub(pki, PATIENT_SITE, port).GetChain(pb.GetChainRequest(coi=coi), timeout=10).chain
    assert list(chain.sites) == sorted(RELATED_SITES)
    kinds = [alert.kind for alert in chain.alerts]
    assert kinds.count("double-infusion") == 1
    authored = [a.detail for a in chain.alerts if a.kind == "unrelated-author"]
    assert len(authored) == 3 and all(OTHER_HOSPITAL in detail for detail in authored)

    token = issue_site_token(pki, OTHER_HOSPITAL)
    with TestClient(service.http_app) as http:
        headers = {"Authorization": f"Bearer {token}"}
        for path in (f"/v1/chains/{coi}", f"/v1/chains/{coi}/custody", f"/v1/alerts?coi={coi}"):
            assert http.get(path, headers=headers).status_code == 404, path
        listed_http = http.get("/v1/chains?limit=1000", headers=headers).json()["chains"]
        assert coi not in [summary["coi"] for summary in listed_http]
