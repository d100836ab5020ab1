"""Infusion's projection of manufacturing, release and intake events, and of every treating
site's infusions (its own topic): decoded from real protobuf payloads, folded once per
(aggregate, version), idempotent on redelivery and insensitive to the order in which the
topics arrive."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.common.v1.common_pb2 import Condition
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v.intake.events.v1 import events_pb2 as intake
from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v.release.events.v1 import events_pb2 as release
from v2v_infusion.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    SqlInfusionFacts,
    create_tables,
)
from v2v_infusion.domain.values import ReleaseStatus
from v2v_platform.conditions import Condition as Kernel
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_testkit.golden.infusion import GOLDEN_DIR
from v2v_testkit.infusion import BATCH, COI, OTHER_SITE, SITE, product_din

AT = datetime(2025, 6, 4, 8, 0, tzinfo=UTC)
PROJECTED_AT = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)
DINS = [product_din(1), product_din(2)]


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def delivered(aggregate: str, version: int, payload: Message, site: str = "QC-1") -> Delivered:
    content = EnvelopeContent(
        coi=COI,
        aggregate_type="Test",
        aggregate_id=aggregate,
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=AT,
        site_id=site,
        actor=Actor("u-1", "User One", "qc"),
    )
    signer = SiteSigningKey.from_seed(site, bytes(32))
    return Delivered(build_envelope(content, b"", signer), Location("t", 0, version), [])


def products() -> manufacturing.ProductUnitsCreated:
    return manufacturing.ProductUnitsCreated(
        coi=COI,
        batch_id=BATCH,
        product_dins=DINS,
        hold_condition=Condition.CONDITION_CRYO,
        created_at=stamp(AT - timedelta(days=1)),
    )


def provisional(at: datetime = AT) -> release.ProvisionallyCertified:
    return release.ProvisionallyCertified(
        coi=COI, batch_id=BATCH, spec_version="v1", product_dins=DINS, certified_at=stamp(at)
    )


def failure(failure_id: str = "f-1") -> release.PostReleaseFailureRecorded:
    return release.PostReleaseFailureRecorded(
        coi=COI,
        batch_id=BATCH,
        failure_id=failure_id,
        spec_version="v1",
        product_dins=[DINS[0]],
        test="sterility",
        value="positive",
        criterion="negative",
        result_at=stamp(AT + timedelta(days=5)),
        released_as="provisional",
    )


class Projected:
    """A SQLite consumer store with the projection, fed batch by batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = SqliteConsumerStore(path, CONSUMER_NAME)
        create_tables(self.store.connection)
        self.now = PROJECTED_AT
        self.projection = FactsProjection(clock=lambda: self.now)

    def feed(self, *batch: Delivered) -> tuple[int, int]:
        with self.store.transaction() as (unit_of_work, ledger):
            stats = apply_once(list(batch), ledger, unit_of_work, self.projection)
        return stats.applied, stats.duplicates

    def facts(self) -> SqlInfusionFacts:
        return FACTS_FEED.sqlite_facts(self.path)


@pytest.fixture
def projected(tmp_path: Path) -> Projected:
    return Projected(tmp_path / "facts.sqlite")


def test_release_before_product_units_still_makes_a_released_unit(projected: Projected) -> None:
    assert projected.feed(delivered("release-1", 1, provisional())) == (1, 0)
    facts = projected.facts()
    assert facts.product_unit(DINS[0][:13]) is None
    assert facts.release_of(BATCH).status is ReleaseStatus.PROVISIONAL
    assert projected.feed(delivered("batch-1", 1, products())) == (1, 0)
    unit = facts.product_unit(DINS[1][:13])
    assert unit is not None
    assert (unit.din, unit.coi, unit.batch_id, unit.condition) == (DINS[1], COI, BATCH, Kernel.CRYO)
    assert facts.release_of(BATCH).released_at == AT


def test_redelivery_changes_nothing_and_the_first_raise_time_is_kept(
    projected: Projected,
) -> None:
    first = [delivered("batch-1", 1, products()), delivered("release-1", 1, failure())]
    assert projected.feed(*first) == (2, 0)
    projected.now = PROJECTED_AT + timedelta(hours=1)
    assert projected.feed(*first) == (0, 2)  # the ledger skips them
    replayed = Projected(projected.path)  # a new ledger-less replay of the same failure
    replayed.now = PROJECTED_AT + timedelta(hours=2)
    replayed.projection(replayed.store.connection, delivered("release-1", 1, failure()))
    [alert] = projected.facts().failures()
    assert alert.raised_at == PROJECTED_AT
    assert (alert.failure_id, alert.coi, alert.batch_id) == ("f-1", COI, BATCH)
    assert (alert.test, alert.value, alert.criterion) == ("sterility", "positive", "negative")
    assert alert.result_at == AT + timedelta(days=5)
    assert alert.product_dins == tuple(DINS)  # the named DIN, then the batch's other units
    assert projected.facts().failures_of_batch(BATCH) == [alert]
    assert projected.facts().failure("f-1") == alert


def test_the_strongest_decision_wins_and_the_earliest_release_time_is_kept(
    projected: Projected,
) -> None:
    final = release.FinallyCertified(
        coi=COI, batch_id=BATCH, certified_at=stamp(AT + timedelta(days=9))
    )
    # out of order (e.g. replayed from another stream): the later decision first
    projected.feed(delivered("release-2", 1, final), delivered("release-1", 1, provisional()))
    state = projected.facts().release_of(BATCH)
    assert (state.status, state.released_at) == (ReleaseStatus.FINAL, AT)
    rejected = release.BatchRejected(
        coi=COI, batch_id=BATCH, rejected_at=stamp(AT + timedelta(days=10))
    )
    projected.feed(delivered("release-1", 2, rejected))
    assert projected.facts().release_of(BATCH).status is ReleaseStatus.REJECTED


def test_an_accepted_oos_release_releases_the_batch(projected: Projected) -> None:
    accepted = release.OosReleaseAccepted(
        coi=COI, batch_id=BATCH, treating_site_id=SITE, accepted_at=stamp(AT)
    )
    projected.feed(delivered("release-1", 1, accepted))
    state = projected.facts().release_of(BATCH)
    assert (state.status, state.released_at) == (ReleaseStatus.OOS_ACCEPTED, AT)
    assert projected.facts().release_of("other").status is ReleaseStatus.NONE


def test_a_decision_without_its_time_takes_the_envelope_time(projected: Projected) -> None:
    projected.feed(
        delivered("release-1", 1, release.ProvisionallyCertified(coi=COI, batch_id=BATCH))
    )
    assert projected.facts().release_of(BATCH).released_at == AT


def test_enrolment_names_the_treating_site(projected: Projected) -> None:
    enrolled = intake.PatientEnrolled(
        coi=COI, patient_pseudonym="p-1", enrolling_site_id="HOSP-C", treating_site_id=SITE
    )
    projected.feed(delivered("therapy-1", 1, enrolled, "HOSP-C"))
    facts = projected.facts()
    assert facts.treating_site_of(COI) == SITE
    assert facts.treating_site_of("CHA123425000099") is None


def test_the_first_enrolment_by_its_enrolling_site_names_the_treating_site(
    projected: Projected,
) -> None:
    def enrolment(by: str, treating: str) -> intake.PatientEnrolled:
        return intake.PatientEnrolled(
            coi=COI, patient_pseudonym="p-1", enrolling_site_id=by, treating_site_id=treating
        )

    claimed = enrolment("HOSP-C", "HOSP-X")  # signed by HOSP-X, claiming HOSP-C enrolled
    projected.feed(delivered("therapy-0", 1, claimed, "HOSP-X"))
    assert projected.facts().treating_site_of(COI) is None
    projected.feed(delivered("therapy-1", 1, enrolment("HOSP-C", SITE), "HOSP-C"))
    projected.feed(delivered("therapy-2", 1, enrolment("HOSP-X", "HOSP-X"), "HOSP-X"))
    assert projected.facts().treating_site_of(COI) == SITE


def test_malformed_events_are_skipped_not_projected(projected: Projected) -> None:
    bad_units = manufacturing.ProductUnitsCreated(
        coi="not a coi", batch_id=BATCH, product_dins=DINS
    )
    no_batch = release.ProvisionallyCertified(coi=COI, batch_id=" ")
    unrelated = intake.SlotBooked(coi=COI, slot_id="s-1")
    assert projected.feed(
        delivered("batch-9", 1, bad_units),
        delivered("release-9", 1, no_batch),
        delivered("therapy-9", 1, unrelated),
    ) == (3, 0)
    facts = projected.facts()
    assert facts.product_unit(DINS[0][:13]) is None
    assert facts.release_of(BATCH).status is ReleaseStatus.NONE


def golden_infusion() -> infusion.InfusionAdministered:
    """Infusion's own published contract (its golden vector)."""
    payload = (GOLDEN_DIR / "InfusionAdministered.bin").read_bytes()
    return infusion.InfusionAdministered.FromString(payload)


def test_an_infusion_at_any_site_is_known_by_its_unit(projected: Projected) -> None:
    administered = golden_infusion()
    assert projected.feed(delivered("unit-1", 5, administered, OTHER_SITE)) == (1, 0)
    [known] = projected.facts().infusions_of(administered.din[:13])
    assert (known.din, known.coi, known.site_id) == (administered.din, administered.coi, OTHER_SITE)
    assert known.administered_at == administered.administered_at.ToDatetime(UTC)
    assert projected.facts().infusions_of(product_din(99)[:13]) == []


def test_a_second_sites_infusion_of_one_unit_is_a_critical_double_infusion(
    projected: Projected, caplog: pytest.LogCaptureFixture
) -> None:
    administered = golden_infusion()
    projected.feed(delivered("unit-1", 5, administered, SITE))
    projected.feed(delivered("unit-1", 5, administered, SITE))  # redelivery: nothing new
    assert not [r for r in caplog.records if r.levelno == logging.CRITICAL]
    projected.feed(delivered("unit-9", 5, administered, OTHER_SITE))
    sites = [known.site_id for known in projected.facts().infusions_of(administered.din[:13])]
    assert sorted(sites) == sorted([SITE, OTHER_SITE])
    [critical] = [r for r in caplog.records if r.levelno == logging.CRITICAL]
    assert "double-infusion" in critical.getMessage() and OTHER_SITE in critical.getMessage()


def test_infusion_reads_its_own_topic() -> None:
    assert "infusion" in FACTS_FEED.contexts
