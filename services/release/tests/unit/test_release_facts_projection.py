"""Consumer side of manufacturing's and intake's contracts: their golden vectors folded into
release's own batch facts (SQLite here; PostgreSQL in the integration test)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message

from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_platform.auth.pki import init_pki, parse_site_spec
from v2v_platform.conditions import Condition
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.esign import Signer
from v2v_release.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlReleaseFacts,
)
from v2v_release.bootstrap import bootstrap
from v2v_release.settings import ReleaseSettings
from v2v_testkit.golden.release import GOLDEN_DIR
from v2v_testkit.release import build_app, qc, reader, report

GOLDEN = GOLDEN_DIR.parents[1]
BATCH_ID = "3f6c2b1a-9d4e-4c7b-8a15-0e2d4f6a8b9c"  # manufacturing's golden batch
COI = "CHA123425000017"
SIGNER = SiteSigningKey.from_seed("GMP-B", bytes(range(32)))


def golden(context: str, name: str) -> Message:
    module = {"intake": intake, "manufacturing": manufacturing}[context]
    message_class = getattr(module, name)
    message: Message = message_class.FromString(
        (GOLDEN / context / "v1" / f"{name}.bin").read_bytes()
    )
    return message


def delivered(
    payload: Message, version: int = 1, reason: str = "", site: str = "GMP-B"
) -> Delivered:
    content = EnvelopeContent(
        coi=COI,
        aggregate_type="Batch",
        aggregate_id=f"agg-{type(payload).__name__}",
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=datetime(2025, 6, 2, tzinfo=UTC),
        site_id=site,
        actor=Actor("u-op", "Grace Operator", "manufacturing"),
        reason=reason,
    )
    signer = SIGNER if site == "GMP-B" else SiteSigningKey.from_seed(site, bytes(range(32)))
    return Delivered(build_envelope(content, b"", signer), Location("t"), [])


def fold(store: SqliteConsumerStore, *batch: Delivered) -> int:
    with store.transaction() as (unit, ledger):
        return apply_once(batch, ledger, unit, FactsProjection()).applied


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "facts.sqlite"


@pytest.fixture
def facts(db: Path) -> SqlReleaseFacts:
    return FACTS_FEED.sqlite_facts(db)  # creates the tables


@pytest.fixture
def store(db: Path, facts: SqlReleaseFacts) -> SqliteConsumerStore:
    return SqliteConsumerStore(db, CONSUMER_NAME)


def test_golden_batch_is_known_once_started(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    assert facts.batch(BATCH_ID) is None
    assert fold(store, delivered(golden("manufacturing", "ProductUnitsCreated"))) == 1
    assert facts.batch(BATCH_ID) is None  # units, but no start known yet
    fold(store, delivered(golden("manufacturing", "BatchStarted")))
    fact = facts.batch(BATCH_ID)
    assert fact is not None
    assert (fact.coi, fact.manufacturing_site_id) == (COI, "GMP-B")
    assert fact.started_at == datetime(2025, 6, 2, 8, 30, tzinfo=UTC)
    assert fact.product_dins == ("W12342500000100", "W12342500000200")
    assert fact.hold_condition is Condition.CRYO and fact.failure_reason is None


def test_a_failed_batch_is_known_as_failed(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    fold(store, delivered(golden("manufacturing", "BatchStarted")))
    fold(store, delivered(golden("manufacturing", "BatchFailed")))
    fact = facts.batch(BATCH_ID)
    assert fact is not None and fact.failure_reason == "mycoplasma positive"
    assert fact.product_dins == ()


def test_the_treating_site_comes_from_intake(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    assert facts.treating_site(COI) is None
    fold(store, delivered(golden("intake", "PatientEnrolled"), site="HOSP-A"))
    assert facts.treating_site(COI) == "HOSP-T"


def test_only_the_first_enrolment_by_its_enrolling_site_names_the_treating_site(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    enrolled = golden("intake", "PatientEnrolled")
    assert isinstance(enrolled, intake.PatientEnrolled)
    claimed = intake.PatientEnrolled()
    claimed.CopyFrom(enrolled)
    claimed.treating_site_id = "HOSP-X"
    fold(store, delivered(claimed, site="HOSP-X"))  # HOSP-X claims HOSP-A enrolled it
    assert facts.treating_site(COI) is None
    fold(store, delivered(enrolled, version=2, site="HOSP-A"))
    claimed.enrolling_site_id = "HOSP-X"
    fold(store, delivered(claimed, version=3, site="HOSP-X"))
    assert facts.treating_site(COI) == "HOSP-T"


def test_redelivery_is_a_no_op_and_others_are_ignored(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    started = delivered(golden("manufacturing", "BatchStarted"))
    assert fold(store, started) == 1
    assert fold(store, started) == 0
    assert fold(store, delivered(golden("manufacturing", "ProcessStepRecorded"))) == 1
    assert facts.batch(BATCH_ID) is not None


def test_a_malformed_fact_is_skipped(store: SqliteConsumerStore, facts: SqlReleaseFacts) -> None:
    bad = manufacturing.BatchStarted(coi=COI, batch_id="not-a-uuid")
    fold(store, delivered(bad))
    assert facts.batch("not-a-uuid") is None


def test_the_application_opens_a_record_from_projected_facts(
    store: SqliteConsumerStore, facts: SqlReleaseFacts
) -> None:
    fold(store, delivered(golden("manufacturing", "BatchStarted")))
    app = build_app(facts)
    recorded = app.record_qc_result(BATCH_ID, report("viability"), None, qc())
    assert recorded.passed and app.batch_release(BATCH_ID, reader()).coi == COI


def test_sqlite_configuration_keeps_facts_signers_and_events_durable(tmp_path: Path) -> None:
    init_pki(tmp_path / "pki", [parse_site_spec("QC-1:qc")])
    settings = ReleaseSettings(
        site_id="QC-1", pki_dir=tmp_path / "pki", sqlite_path=tmp_path / "r.db"
    )
    service = bootstrap(settings)
    try:
        facts_file = settings.side_sqlite_path("batch-facts")
        assert facts_file == tmp_path / "r.batch-facts.sqlite"
        fold(
            SqliteConsumerStore(facts_file, CONSUMER_NAME),
            delivered(golden("manufacturing", "BatchStarted")),
        )
        recorded = service.app.record_qc_result(BATCH_ID, report("viability"), None, qc())
        service.signers.put(Signer("QC-1", "u-qp", "Dr. Q", frozenset({"qp"}), "scrypt$x"))
    finally:
        service.stop()
    again = bootstrap(settings)
    try:
        assert (
            again.app.batch_release(BATCH_ID, reader()).results[0].result_id == recorded.result_id
        )
        assert again.signers.get("QC-1", "u-qp") is not None
    finally:
        again.stop()
