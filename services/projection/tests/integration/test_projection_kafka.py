"""The projection core on real Kafka + PostgreSQL: a generated consortium history produced onto
the five context topics is folded, served over gRPC (mTLS, per-site visibility) and HTTP, and
survives restarts without losing or double-counting an event: a clean stop between batches
(in process) and a SIGKILL in the middle of consumption (a real process).

Other tests share the broker and its topics: everything here is checked for this history's
COIs only (its seed is random, so its COIs are its own).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v.projection.v1 import projection_service_pb2_grpc as pb_grpc
from v2v_platform.auth import SiteTlsFiles, channel_credentials, secure_channel
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.auth.tokens import issue_site_token
from v2v_platform.envelope import decode
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_projection.store import decode_segment
from v2v_testkit.audit import trust_keys
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = pytest.mark.integration
SITES = ("HOSP-A:collection,infusion", "GMP-B:manufacturing", "AUDIT-1:auditor", "PROJ-1:auditor")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("projection") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def history(pki: Path) -> GeneratedHistory:
    generated = generate_history(random.randrange(1, 100_000), 8)
    trust_keys(pki, generated.keys)  # the projection verifies it against the PKI's ring
    return generated


def produce(kafka: str, records: list[tuple[str, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    try:
        for topic, value in records:
            producer.send(topic, key=decode(value).coi.encode(), value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def halves(history: GeneratedHistory) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    first: list[tuple[str, bytes]] = []
    second: list[tuple[str, bytes]] = []
    for topic, values in history.by_topic.items():
        middle = len(values) // 2
        first += [(topic, value) for value in values[:middle]]
        second += [(topic, value) for value in values[middle:]]
    return first, second


def settings_for(pki: Path, database: PostgresDatabase, kafka: str) -> ProjectionSettings:
    return ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=database.dsn,
        kafka_bootstrap=kafka,
        consumer_group=f"projection-it-{random.getrandbits(32):08x}",
        max_poll_records=100,
    )


def taken(service: ProjectionService, history: GeneratedHistory) -> int:
    counted: int = service.projection.read(
        lambda fold: sum(fold.event_count(c) for c in history.cois)
    )
    return counted


def stored_events(dsn: str, history: GeneratedHistory) -> list[tuple[str, int]]:
    """(aggregate id, version) of every stored envelope of this history."""
    mine = set(history.cois)
    with psycopg.connect(dsn) as connection:
        segments = connection.execute("SELECT topics, envelopes FROM projection_segments")
        rows = [row for topics, data in segments for row in decode_segment(topics, data)]
    envelopes = [decode(value) for _, _, _, value in rows]
    return [(e.aggregate_id, e.aggregate_version) for e in envelopes if e.coi in mine]


@pytest.fixture
def started(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[list[ProjectionService]]:
    services: list[ProjectionService] = []
    yield services
    for service in services:
        service.stop()


def start(settings: ProjectionSettings, services: list[ProjectionService]) -> ProjectionService:
    service = bootstrap(settings)
    services.append(service)
    service.start_grpc("127.0.0.1:0")
    service.start_consumer()
    service.start_alert_hub(interval_s=0.1)
    return service


def channel(pki: Path, site: str, port: int) -> grpc.Channel:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    return secure_channel(f"127.0.0.1:{port}", credentials, server_name="localhost")


def test_restart_between_batches_resumes_without_double_counting_and_serves_the_chains(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    history: GeneratedHistory,
    started: list[ProjectionService],
) -> None:
    first, second = halves(history)
    settings = settings_for(pki, postgres_database, kafka_bootstrap)
    produce(kafka_bootstrap, first)
    service = start(settings, started)
    eventually(lambda: taken(service, history) == len(first), "the first half to be folded")
    service.stop()
    started.remove(service)

    produce(kafka_bootstrap, second + first[:40])  # the rest, and a redelivered run
    service = start(settings, started)
    eventually(lambda: taken(service, history) == history.event_count, "the whole history")

    # The writer persists batches (envelopes + offsets together) behind the in-memory fold.
    def all_stored() -> list[Any]:
        rows = stored_events(postgres_database.dsn, history)
        return rows if len(rows) >= history.event_count else []

    stored = eventually(all_stored, "every folded event to be stored")
    assert len(stored) == len(set(stored)) == history.event_count
    check_grpc(pki, service, history)
    check_http(pki, service, history)


def check_grpc(pki: Path, service: ProjectionService, history: GeneratedHistory) -> None:
    assert service.grpc is not None
    views = {coi: service.projection.chain(coi) for coi in history.cois}
    own = next(coi for coi, v in views.items() if v and "HOSP-A" in v["sites"])
    foreign = next(coi for coi, v in views.items() if v and "HOSP-A" not in v["sites"])
    with channel(pki, "HOSP-A", service.grpc.port) as hospital:
        queries = pb_grpc.ChainQueryServiceStub(hospital)
        chain = queries.GetChain(pb.GetChainRequest(coi=own), timeout=10).chain
        assert (chain.coi, chain.stage) == (own, views[own]["stage"])  # type: ignore[index]
        assert chain.units[0].custody[0].custodian == "site:HOSP-A"
        timeline = queries.GetCustodyTimeline(pb.GetCustodyTimelineRequest(coi=own), timeout=10)
        assert [u.din for u in timeline.units] == [u.din for u in chain.units]
        with pytest.raises(grpc.RpcError) as refused:
            queries.GetChain(pb.GetChainRequest(coi=foreign), timeout=10)
        assert refused.value.code() == grpc.StatusCode.NOT_FOUND
        listed = every_chain(queries, pb.ListChainsRequest(site_id="HOSP-A", page_size=50))
        assert own in listed and foreign not in listed
        kpis = queries.GetKpis(pb.GetKpisRequest(), timeout=10)  # over HOSP-A's chains only
        assert kpis.consortium.chains >= sum(
            bool(v and "HOSP-A" in v["sites"]) for v in views.values()
        )
        assert kpis.consortium.chains == len(every_chain(queries, pb.ListChainsRequest()))
    with channel(pki, "AUDIT-1", service.grpc.port) as auditor:
        queries = pb_grpc.ChainQueryServiceStub(auditor)
        assert queries.GetChain(pb.GetChainRequest(coi=foreign), timeout=10).chain.coi == foreign
        kpis = queries.GetKpis(pb.GetKpisRequest(), timeout=10)
        assert kpis.consortium.chains >= len(history.cois)
        check_watch(queries, views)


def every_chain(queries: Any, request: pb.ListChainsRequest) -> list[str]:
    cois: list[str] = []
    while True:
        page = queries.ListChains(request, timeout=10)
        cois += [chain.coi for chain in page.chains]
        if not page.next_page_token:
            return cois
        request.page_token = page.next_page_token


def check_watch(queries: Any, views: dict[str, Any]) -> None:
    with_alerts = next((coi for coi, v in views.items() if v and v["alerts"]), None)
    if with_alerts is None:
        return
    request = pb.WatchAlertsRequest(coi=with_alerts, include_existing=True)
    stream = queries.WatchAlerts(request, timeout=10)
    first = next(stream)
    stream.cancel()
    assert first.alert.coi == with_alerts
    assert first.alert.kind == views[with_alerts]["alerts"][0]["kind"]


def check_http(pki: Path, service: ProjectionService, history: GeneratedHistory) -> None:
    token = issue_site_token(pki, "AUDIT-1")
    with TestClient(service.http_app) as client:
        headers = {"Authorization": f"Bearer {token}"}
        coi = history.cois[0]
        chain = client.get(f"/v1/chains/{coi}", headers=headers).json()
        assert chain == service.projection.chain(coi)
        assert client.get("/v1/kpis", headers=headers).status_code == 200


def test_a_killed_process_resumes_from_its_stored_offsets_without_double_counting(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    history: GeneratedHistory,
) -> None:
    produce(kafka_bootstrap, [record for half in halves(history) for record in half])
    settings = settings_for(pki, postgres_database, kafka_bootstrap)
    environment = {
        **os.environ,
        "V2V_SITE_ID": "PROJ-1",
        "V2V_PKI_DIR": str(pki),
        "V2V_POSTGRES_DSN": postgres_database.dsn,
        "V2V_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "V2V_CONSUMER_GROUP": settings.consumer_group,
        "V2V_MAX_POLL_RECORDS": "20",
        "V2V_GRPC_ADDRESS": "127.0.0.1:0",
        "V2V_HTTP_PORT": "0",
    }

    def run() -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "v2v_projection"]
        return subprocess.Popen(command, env=environment, stderr=subprocess.DEVNULL)

    def count() -> int:
        try:
            return len(stored_events(postgres_database.dsn, history))
        except psycopg.errors.UndefinedTable:
            return 0

    process = run()
    try:
        eventually(lambda: 0 < count() < history.event_count, "consumption to be under way")
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        killed_at = count()
        process = run()
        eventually(lambda: count() == history.event_count, "the restarted process to finish")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)

    stored = stored_events(postgres_database.dsn, history)
    assert 0 < killed_at < history.event_count
    assert len(stored) == len(set(stored)) == history.event_count
