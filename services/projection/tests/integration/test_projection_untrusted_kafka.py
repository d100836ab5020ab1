"""The projection core on the real broker and PostgreSQL folds verified facts only.

Next to a genuine generated chain, put on v2v.release.events.v1: a `FinallyCertified` signed
with a random key that claims to be the chain's QC lab, one signed with its real key by a real
consortium site that does not hold the `qc` role (the treating hospital), and a record that is
not an envelope (keyed by the COI, as the relays key every record). The consumer stays alive,
the chain's release status stays as it was, the chain shows one critical `untrusted-record`
alert per refused record naming where it was and the author it claims, all three are in the
projection's quarantine (`v2v quarantine list --consumer projection`), the alerts survive a
restart, and the genuine release and infusion events published after them complete the chain.

Other tests share the broker and its topics: everything here is checked for this history's
COIs only (its seed is random, so its COIs are its own).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.cli import app as v2v
from v2v_platform.envelope import decode
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.relay import ensure_topics
from v2v_platform.testing.infra import PostgresDatabase
from v2v_platform.testing.producing import eventually
from v2v_projection.bootstrap import ProjectionService, bootstrap
from v2v_projection.fold import ChainFold
from v2v_projection.settings import ProjectionSettings
from v2v_projection.store import QUARANTINE_CONSUMER
from v2v_testkit.audit import trust_keys
from v2v_testkit.synthetic.chains import GeneratedHistory, generate_history
from v2v_testkit.synthetic.consortium import QC_SITE_OF
from v2v_testkit.synthetic.envelopes import EnvelopeWriter
from v2v_testkit.synthetic.sealing import Draft, StreamSealer

pytestmark = pytest.mark.integration
SITES = ("HOSP-A:collection,infusion", "AUDIT-1:auditor", "PROJ-1:auditor")
RELEASE = "v2v.release.events.v1"
EARLY = ("v2v.intake.events.v1", "v2v.manufacturing.events.v1", "v2v.logistics.events.v1")
LATE = (RELEASE, "v2v.infusion.events.v1")
FORGED_AT = datetime(2025, 1, 8, 9, 0, tzinfo=UTC)


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    init_pki(directory, [parse_site_spec(spec) for spec in SITES])
    return directory


@pytest.fixture
def seed() -> int:
    return random.randrange(1, 100_000)


@pytest.fixture
def history(pki: Path, seed: int) -> GeneratedHistory:
    generated = generate_history(seed, 2)
    trust_keys(pki, generated.keys)
    return generated


@pytest.fixture
def services(
    pki: Path, postgres_database: PostgresDatabase, kafka_bootstrap: str
) -> Iterator[list[ProjectionService]]:
    ensure_topics(kafka_bootstrap, [*EARLY, *LATE], 6)
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


def genuine(history: GeneratedHistory, topics: tuple[str, ...]) -> list[tuple[str, bytes, bytes]]:
    return [
        (topic, decode(value).coi.encode(), value)
        for topic in topics
        for value in history.by_topic[topic]
    ]


def forged_records(seed: int, coi: str, view: dict[str, Any]) -> list[bytes]:
    batch_id, gmp = view["batches"][0]["batch_id"], view["batches"][0]["site_id"]
    decision = release.FinallyCertified(coi=coi, batch_id=batch_id, spec_version="v1")
    qc_lab = QC_SITE_OF[gmp]
    forger = StreamSealer({qc_lab: SiteSigningKey.generate(qc_lab)})
    qp = ("u-qp", "Dr. Forger", "qp")
    random_key = forger.seal(
        Draft("release", "BatchRelease", "BatchRelease:forged", coi, FORGED_AT, decision, qc_lab,
              qp, signature_meaning="approval")
    )  # fmt: skip
    hospital = EnvelopeWriter(seed).write(  # the history's keys
        coi, "BatchRelease:by-hospital", decision, FORGED_AT, site=view["treating_site_id"],
        context="release",
    )  # fmt: skip
    return [random_key, hospital, b"\x00\xffnot an envelope"]


def untrusted_alerts(service: ProjectionService, coi: str) -> list[dict[str, Any]]:
    view = service.projection.chain(coi)
    return [a for a in (view or {}).get("alerts", []) if a["kind"] == "untrusted-record"]


def taken(service: ProjectionService, history: GeneratedHistory) -> int:
    counted: int = service.projection.read(
        lambda fold: sum(fold.event_count(c) for c in history.cois)
    )
    return counted


def consumer_alive() -> bool:
    return any(t.name.endswith("consumer") and t.is_alive() for t in threading.enumerate())


def test_forged_release_decisions_are_quarantined_and_raised_and_the_chain_completes(
    pki: Path,
    postgres_database: PostgresDatabase,
    kafka_bootstrap: str,
    seed: int,
    history: GeneratedHistory,
    services: list[ProjectionService],
) -> None:
    settings = ProjectionSettings(
        site_id="PROJ-1",
        pki_dir=pki,
        postgres_dsn=postgres_database.dsn,
        kafka_bootstrap=kafka_bootstrap,
        consumer_group=f"projection-untrusted-{random.getrandbits(32):08x}",
        max_poll_records=200,
    )
    early = genuine(history, EARLY)
    produce(kafka_bootstrap, early)
    service = start(settings, services)
    eventually(lambda: taken(service, history) == len(early), "the chains before release")
    coi = history.cois[0]
    before = service.projection.chain(coi)
    assert before is not None and before["releases"] == []

    forged = forged_records(seed, coi, before)
    produce(kafka_bootstrap, [(RELEASE, coi.encode(), value) for value in forged])

    def three_alerts() -> list[dict[str, Any]]:
        found = untrusted_alerts(service, coi)
        return found if len(found) == 3 else []

    raised = eventually(three_alerts, "an untrusted-record alert per refused record")
    claimed = sorted(a["detail"].split("claimed author ")[1].split(":")[0] for a in raised)
    qc_lab = QC_SITE_OF[before["batches"][0]["site_id"]]
    assert claimed == sorted([qc_lab, before["treating_site_id"], "unknown"])
    assert all(f"{RELEASE}[" in a["detail"] for a in raised)
    assert {a["detail"].split("(")[1].split(")")[0] for a in raised} == {
        "signature",
        "authorship",
        "decode",
    }
    after = service.projection.chain(coi)
    assert after is not None and (after["releases"], after["stage"]) == ([], before["stage"])
    assert consumer_alive()
    mine = [r for r in service.projection.quarantined_records() if r.coi == coi]
    assert sorted(r.raw for r in mine) == sorted(forged)

    listed = CliRunner().invoke(
        v2v,
        ["quarantine", "list", "--consumer", QUARANTINE_CONSUMER, "--postgres-dsn",
         postgres_database.dsn],
    )  # fmt: skip
    assert listed.exit_code == 0, listed.output
    assert len([line for line in listed.output.splitlines() if f"coi={coi}" in line]) == 3

    service.stop()
    services.remove(service)
    service = start(settings, services)
    assert untrusted_alerts(service, coi) == raised  # reloaded with the store

    produce(kafka_bootstrap, genuine(history, LATE))
    eventually(lambda: taken(service, history) == history.event_count, "the whole history")
    reference = ChainFold()
    reference.apply_all(value for _, _, value in genuine(history, EARLY + LATE))
    expected = reference.chain(coi)
    complete = service.projection.chain(coi)
    assert expected is not None and complete is not None
    assert (complete["stage"], complete["releases"]) == (expected["stage"], expected["releases"])
    assert complete["releases"] != []
    assert untrusted_alerts(service, coi) == raised
    assert consumer_alive()
