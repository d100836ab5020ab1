"""One DIN bound to two COIs, on the real broker and PostgreSQL (issue 14, I1).

The issue's in-house site: intake labelled patient 1's bags S..0100/0200/0300; manufacturing,
numbering from 1 under the same FIN, harvested patient 2's products S..0100 and S..0200. The
two facts are on different topics and chains. The projection raises a critical
`identity-conflict` alert on BOTH chains (patient 1's chain changed without an event of its
own: a watcher of patient 1's alerts is told), the alerts survive a restart (the DIN index is
rebuilt from the store), and a DIN then infused under both COIs is a `double-infusion` on both.

Other tests share the broker and its topics: the FIN and sequence here are drawn at random,
so the COIs and DINs are this test's own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from kafka import KafkaProducer

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.ids import issue_coi, issue_din
from v2v_platform.relay import ensure_topics
from v2v_platform.scope import Scope
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_projection.alert_watch import Watch
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.settings import ProjectionSettings
from v2v_testkit.audit import trust_keys
from v2v_testkit.synthetic.envelopes import EnvelopeWriter

pytestmark = pytest.mark.integration
SITES = ("HOSP-A:collection,infusion", "AUDIT-1:auditor", "PROJ-1:auditor")
TOPICS = ("v2v.intake.events.v1", "v2v.manufacturing.events.v1", "v2v.infusion.events.v1")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class InHouseSite:
    """Facts of one in-house site (HOSP-A collects and infuses, GMP-B manufactures) under one
    FIN drawn at random, signed with the keys of `EnvelopeWriter(seed)`."""

    def __init__(self, seed: int) -> None:
        self.writer = EnvelopeWriter(seed)
        rng = random.Random(seed)
        self.fin = f"S{rng.randrange(1000, 10_000)}"
        self.first = rng.randrange(1, 900_000)
        self.patients = tuple(issue_coi(self.fin, 26, self.first + n).value for n in (0, 1))

    def din(self, n: int) -> str:
        return str(issue_din(self.fin, 26, self.first + n))

    def fact(
        self, coi: str, aggregate: str, payload: Message, hours: float, context: str, site: str
    ) -> tuple[str, bytes, bytes]:
        moment = T0 + timedelta(hours=hours)
        value = self.writer.write(
            coi, f"{aggregate}:{coi}", payload, moment, site=site, context=context
        )
        return (f"v2v.{context}.events.v1", coi.encode(), value)

    def labelled(self, coi: str, din: str, hours: float) -> tuple[str, bytes, bytes]:
        payload = intake.UnitLabelled(coi=coi, collection_id="c-1", din=din)
        return self.fact(coi, "Therapy", payload, hours, "intake", "HOSP-A")

    def harvested(self, coi: str, dins: list[str], hours: float) -> tuple[str, bytes, bytes]:
        stamp = Timestamp()
        stamp.FromDatetime(T0 + timedelta(hours=hours))
        payload = manufacturing.ProductUnitsCreated(
            coi=coi,
            batch_id=f"batch-{coi}",
            product_dins=dins,
            hold_condition=common_pb2.CONDITION_CRYO,
            created_at=stamp,
        )
        return self.fact(coi, "Batch", payload, hours, "manufacturing", "GMP-B")

    def infused(self, coi: str, din: str, hours: float) -> tuple[str, bytes, bytes]:
        stamp = Timestamp()
        stamp.FromDatetime(T0 + timedelta(hours=hours))
        payload = infusion.InfusionAdministered(coi=coi, din=din, administered_at=stamp)
        return self.fact(coi, f"ProductAtSite-{din}", payload, hours, "infusion", "HOSP-A")


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def site(pki: Path) -> InHouseSite:
    in_house = InHouseSite(random.randrange(1, 100_000))
    trust_keys(pki, in_house.writer.keys)
    return in_house


@pytest.fixture
def services(
    postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[list[ProjectionService]]:
    ensure_topics(kafka_bootstrap, list(TOPICS), 6)
    running: list[ProjectionService] = []
    yield running
    for service in running:
        service.stop()


def start(settings: ProjectionSettings, running: list[ProjectionService]) -> ProjectionService:
    service = bootstrap(settings)
    running.append(service)
    service.start_consumer()
    return service


def produce(kafka: str, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    try:
        for topic, key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=60)
    finally:
        producer.close()


def alerts(service: ProjectionService, coi: str, kind: str) -> list[dict[str, Any]]:
    view = service.projection.chain(coi)
    return [a for a in (view or {}).get("alerts", []) if a["kind"] == kind]


def test_a_din_bound_to_two_cois_is_a_critical_alert_on_both_chains_through_kafka(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    site: InHouseSite,
    services: list[ProjectionService],
) -> None:
    settings = ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=f"projection-identity-{random.getrandbits(32):08x}",
        max_poll_records=50,
    )
    first, second = site.patients
    bags = [site.din(n) for n in (1, 2, 3)]
    produce(kafka_bootstrap, [site.labelled(first, din, n) for n, din in enumerate(bags)])
    service = start(settings, services)
    eventually(lambda: service.projection.chain(first) is not None, "patient 1's chain")
    watcher = Watch(
        Scope.of(CallerIdentity("AUDIT-1", frozenset({Role.AUDITOR}))),
        coi=first,
        kinds=frozenset({"identity-conflict"}),
    )
    service.hub.watch(watcher, include_existing=False)
    assert not alerts(service, first, "identity-conflict")

    produce(kafka_bootstrap, [site.harvested(second, bags[:2], 240)])

    def both_chains() -> bool:
        return all(len(alerts(service, coi, "identity-conflict")) == 2 for coi in site.patients)

    eventually(both_chains, "an identity-conflict alert per shared DIN on both chains")
    raised = {coi: alerts(service, coi, "identity-conflict") for coi in site.patients}
    for coi, other in ((first, second), (second, first)):
        for alert, din in zip(raised[coi], bags[:2], strict=True):
            assert alert["severity"] == "critical"
            assert din[:13] in alert["detail"] and other in alert["detail"]
    assert service.hub.tick() == 2  # patient 1's chain changed through patient 2's fact
    told = [watcher.inbox.get_nowait() for _ in range(2)]
    assert {(a["coi"], a["kind"]) for a in told} == {(first, "identity-conflict")}

    service.stop()
    services.remove(service)
    service = start(settings, services)
    assert {coi: alerts(service, coi, "identity-conflict") for coi in site.patients} == raised

    produce(
        kafka_bootstrap,
        [site.infused(second, bags[1], 300), site.infused(first, bags[1], 310)],
    )

    def double_infusions() -> bool:
        return all(len(alerts(service, coi, "double-infusion")) == 1 for coi in site.patients)

    eventually(double_infusions, "a double-infusion alert on both chains")
