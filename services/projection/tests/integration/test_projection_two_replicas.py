"""Two projection replicas on real Kafka + PostgreSQL are two full read replicas (ADR 0011):
started with different replica identities after a generated consortium history exists, each
is not ready until it caught up, then both give identical answers, over gRPC and HTTP, to
GetChain for every COI of the history, to ListChains and to GetKpis.

Replica 0 and replica 1 share the database (replica 1's store is its own schema in it) and
the topics; their consumer groups are `<group>` and `<group>-1`. Had they shared one group
(the chart's 3 replicas before ADR 0011), each would have been assigned part of the
partitions: neither would ever be ready, and the answers of each would be partial.

Other tests share the broker and its topics: both replicas fold those records too (refused:
signed by keys this PKI does not trust), the same on both; the history's seed is random, so
its COIs are its own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
import psycopg
import pytest
from fastapi.testclient import TestClient
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaAdminClient, KafkaProducer
from psycopg import sql

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
from v2v_testkit.audit import trust_keys
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history

pytestmark = pytest.mark.integration
SITES = ("HOSP-A:collection,infusion", "GMP-B:manufacturing", "AUDIT-1:auditor", "PROJ-1:auditor")
PATIENTS = 200
READY_TIMEOUT_S = 180.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("replicas") / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def history(pki: Path) -> GeneratedHistory:
    generated = generate_history(random.randrange(1, 100_000), PATIENTS)
    trust_keys(pki, generated.keys)  # the replicas verify it against the PKI's ring
    return generated


@pytest.fixture
def replicas() -> Iterator[list[ProjectionService]]:
    started: list[ProjectionService] = []
    yield started
    for service in started:
        service.stop()


def produce(kafka: str, history: GeneratedHistory) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    try:
        for topic, values in history.by_topic.items():
            for value in values:
                producer.send(topic, key=decode(value).coi.encode(), value=value)
        producer.flush(timeout=120)
    finally:
        producer.close()


def replica_settings(
    pki: Path, database: PostgresDatabase, kafka: str, group: str, replica: str
) -> ProjectionSettings:
    return ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=database.dsn,
        kafka_bootstrap=kafka,
        consumer_group=group,
        projection_replica=replica,
        catch_up_max_lag=0,  # ready = every record there at the time folded
        max_poll_records=100,
        verify_workers=0,
    )


def channel(pki: Path, site: str, port: int) -> grpc.Channel:
    credentials = channel_credentials(SiteTlsFiles.for_site(pki, site))
    return secure_channel(f"127.0.0.1:{port}", credentials, server_name="localhost")


def grpc_serving(pki: Path, service: ProjectionService) -> bool:
    assert service.grpc is not None
    with channel(pki, "PROJ-1", service.grpc.port) as connection:
        health = health_pb2_grpc.HealthStub(connection)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_ready(service: ProjectionService) -> bool:
    with TestClient(service.http_app) as client:
        status: int = client.get("/ready").status_code
    return status == 200


def group_holds_every_partition(kafka: str, group: str) -> tuple[int, bool]:
    """(members of `group`, whether they hold every partition of the topics they read)."""
    admin = KafkaAdminClient(bootstrap_servers=kafka, client_id="v2v-replicas-test")
    try:
        members = admin.describe_groups([group])[group]["members"]
        held = {
            (assigned["topic"], partition)
            for member in members
            for assigned in member["member_assignment"]["assigned_partitions"]
            for partition in assigned["partitions"]
        }
        topics = {t for member in members for t in member["member_metadata"]["topics"]}
        every = {
            (described["name"], partition["partition_index"])
            for described in admin.describe_topics(sorted(topics))
            for partition in described.get("partitions") or []
        }
    finally:
        admin.close()
    return len(members), bool(every) and held == every


def stored_segments(dsn: str) -> dict[str, int]:
    """Stored segments per schema holding the projection's tables in the database."""
    counts: dict[str, int] = {}
    with psycopg.connect(dsn) as connection:
        schemas = connection.execute(
            "SELECT table_schema FROM information_schema.tables"
            " WHERE table_name = 'projection_segments'"
        ).fetchall()
        for (schema,) in schemas:
            query = sql.SQL("SELECT count(*) FROM {}.projection_segments")
            row = connection.execute(query.format(sql.Identifier(schema))).fetchone()
            counts[schema] = int(row[0]) if row else 0
    return counts


def grpc_chains(pki: Path, service: ProjectionService, cois: list[str]) -> dict[str, bytes]:
    """GetChain of every COI, as the auditor sees it (NOT_FOUND raises)."""
    assert service.grpc is not None
    with channel(pki, "AUDIT-1", service.grpc.port) as auditor:
        queries = pb_grpc.ChainQueryServiceStub(auditor)
        return {
            coi: queries.GetChain(pb.GetChainRequest(coi=coi), timeout=10).chain.SerializeToString(
                deterministic=True
            )
            for coi in cois
        }


def grpc_lists(pki: Path, service: ProjectionService) -> tuple[list[Any], Any]:
    """Every page of ListChains and GetKpis, as the auditor sees them."""
    assert service.grpc is not None
    with channel(pki, "AUDIT-1", service.grpc.port) as auditor:
        queries = pb_grpc.ChainQueryServiceStub(auditor)
        listed: list[Any] = []
        request = pb.ListChainsRequest(page_size=1000)
        while True:
            page = queries.ListChains(request, timeout=30)
            listed += page.chains
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        return listed, queries.GetKpis(pb.GetKpisRequest(), timeout=30)


def http_chains(pki: Path, service: ProjectionService, cois: list[str]) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'AUDIT-1')}"}
    chains = {}
    with TestClient(service.http_app) as client:
        for coi in cois:
            reply = client.get(f"/v1/chains/{coi}", headers=headers)
            assert reply.status_code == 200, (coi, reply.text)
            chains[coi] = reply.json()
    return chains


def http_lists(pki: Path, service: ProjectionService) -> tuple[list[Any], Any]:
    headers = {"Authorization": f"Bearer {issue_site_token(pki, 'AUDIT-1')}"}
    with TestClient(service.http_app) as client:
        listed: list[Any] = []
        after = ""
        while True:
            page = client.get("/v1/chains", params={"limit": 1000, "after": after}, headers=headers)
            assert page.status_code == 200, page.text
            listed += page.json()["chains"]
            after = page.json()["next_after"] or ""
            if not after:
                break
        kpis = client.get("/v1/kpis", headers=headers)
        assert kpis.status_code == 200, kpis.text
    return listed, kpis.json()


def last_of_both(
    fetch: Callable[[ProjectionService], T], replicas: list[ProjectionService]
) -> list[T]:
    """Both replicas' answers, asked again until they agree (records of other tests may still
    be arriving on the shared topics) or the deadline passes: the last answers."""
    answers: list[list[T]] = []

    def agree() -> bool:
        answers.append([fetch(service) for service in replicas])
        return answers[-1][0] == answers[-1][1]

    with suppress(AssertionError):
        eventually(agree, "the replicas to agree", 60)
    return answers[-1]


def serialized(answer: tuple[list[Any], Any]) -> tuple[list[bytes], bytes]:
    listed, kpis = answer
    return (
        [summary.SerializeToString(deterministic=True) for summary in listed],
        kpis.SerializeToString(deterministic=True),
    )


def test_two_replicas_each_catch_up_before_ready_then_answer_identically_for_every_coi(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    history: GeneratedHistory,
    replicas: list[ProjectionService],
) -> None:
    produce(kafka_bootstrap, history)  # the history exists before either replica starts
    group = f"v2v-projection-it-{random.getrandbits(32):08x}"
    for replica in ("v2v-projection-0", "v2v-projection-1"):
        settings = replica_settings(pki, postgres_database, kafka_bootstrap, group, replica)
        service = bootstrap(settings)
        replicas.append(service)
        service.start_grpc("127.0.0.1:0")
        service.start_consumer()
        service.start_alert_hub(interval_s=0.1)
        # not ready before it caught up: the whole history is still ahead of it
        with TestClient(service.http_app) as client:
            reply = client.get("/ready")
        assert reply.status_code == 503, reply.text
        assert reply.json()["reasons"][0].startswith("catch-up: catching up with the topics")
        assert not grpc_serving(pki, service)
    first, second = replicas
    assert (first.settings.group_id, second.settings.group_id) == (group, f"{group}-1")

    for service in replicas:  # /ready flips, gRPC health with it
        eventually(partial(http_ready, service), "the replica to be ready", READY_TIMEOUT_S)
        assert grpc_serving(pki, service)
        assert service.catch_up is not None and service.catch_up.lag is not None
        assert service.catch_up.lag.worst == 0  # V2V_CATCH_UP_MAX_LAG=0: everything folded
    # each replica alone in its group, holding every partition; each its own store
    for name in (group, f"{group}-1"):
        assert group_holds_every_partition(kafka_bootstrap, name) == (1, True), name
    segments = stored_segments(postgres_database.dsn)
    assert set(segments) == {"public", "projection_replica_1"}
    assert all(count > 0 for count in segments.values()), segments

    # every COI of the history: found on both (GetChain raises NOT_FOUND otherwise), the same
    cois = list(history.cois)
    chains = [grpc_chains(pki, service, cois) for service in replicas]
    for coi in cois:
        assert chains[0][coi] == chains[1][coi], coi
    pages = [http_chains(pki, service, cois) for service in replicas]
    for coi in cois:
        assert pages[0][coi] == pages[1][coi], coi

    # every chain listed, and the KPIs: the same on both
    over_grpc = last_of_both(lambda s: serialized(grpc_lists(pki, s)), replicas)
    assert over_grpc[0] == over_grpc[1]
    summaries, kpi_view = grpc_lists(pki, first)
    assert set(cois) <= {summary.coi for summary in summaries}
    assert kpi_view.consortium.chains >= len(cois)
    over_http = last_of_both(lambda s: http_lists(pki, s), replicas)
    assert over_http[0] == over_http[1]
    assert set(cois) <= {chain["coi"] for chain in over_http[0][0]}
