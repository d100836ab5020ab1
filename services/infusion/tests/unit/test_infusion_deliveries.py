"""Infusion learns deliveries (issue 14, item 2): from each verified `ShipmentDelivered` on
logistics' topic it keeps when each unit of the manifest reached the destination site (the
earliest delivery per unit and site), and a ward receipt before the known delivery of that
unit to this site is refused (INVALID_ARGUMENT naming `received_at`, nothing recorded); with
no delivery known (an in-house ward, no shipment) the receipt is accepted as before."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v_infusion.adapters.facts_projection import (
    CONSUMER_NAME,
    FACTS_FEED,
    FactsProjection,
    create_tables,
)
from v2v_infusion.application import InfusionApplication
from v2v_infusion.ports import NoInfusionFacts
from v2v_platform.consumer import Delivered, SqliteConsumerStore, apply_once
from v2v_platform.envelope import Location
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.errors import InvalidInput
from v2v_testkit.contracts import golden_dir
from v2v_testkit.infusion import (
    COI,
    OTHER_SITE,
    RELEASED_AT,
    SITE,
    InMemoryFacts,
    kinds,
    nurse,
    product_din,
)

DELIVERED = RELEASED_AT + timedelta(hours=1)
LOGISTICS_SITE = "LOGI-1"


def released_unit(facts: InMemoryFacts) -> str:
    din = product_din(1)
    facts.create_products([din])
    facts.release()
    return din


# the receipt at the ward


def test_a_ward_receipt_before_the_units_delivery_here_is_refused(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = released_unit(facts)
    facts.deliver(din, DELIVERED)
    with pytest.raises(InvalidInput, match=r"received_at .* is before its delivery to this site"):
        app.receive_product(din, DELIVERED - timedelta(minutes=10), nurse())
    assert kinds(app) == []
    view = app.receive_product(din, DELIVERED + timedelta(minutes=10), nurse())
    assert view.status == "received"


def test_a_ward_receipt_at_the_delivery_time_is_accepted(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = released_unit(facts)
    facts.deliver(din, DELIVERED)
    assert app.receive_product(din, DELIVERED, nurse()).status == "received"


def test_without_a_known_delivery_a_ward_receipt_is_accepted_as_before(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    """An in-house ward receives from its own GMP department: no shipment, no delivery."""
    din = released_unit(facts)
    view = app.receive_product(din, RELEASED_AT + timedelta(minutes=5), nurse())
    assert view.status == "received"


def test_a_delivery_to_another_site_does_not_order_this_wards_receipt(
    app: InfusionApplication, facts: InMemoryFacts
) -> None:
    din = released_unit(facts)
    facts.deliver(din, DELIVERED, OTHER_SITE)
    view = app.receive_product(din, RELEASED_AT + timedelta(minutes=5), nurse())
    assert view.status == "received"


def test_a_process_that_only_relays_knows_no_delivery() -> None:
    assert NoInfusionFacts().delivered_at(product_din(1)[:13], SITE) is None


# the projection of logistics' events


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def envelope_of(payload: logistics.ShipmentDelivered, version: int = 9) -> Delivered:
    content = EnvelopeContent(
        coi=payload.coi or COI,
        aggregate_type="Shipment",
        aggregate_id=payload.shipment_id,
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=RELEASED_AT + timedelta(days=3),
        site_id=LOGISTICS_SITE,
        actor=Actor("u-ward", "Ward Nurse", "infusion"),
    )
    signer = SiteSigningKey.from_seed(LOGISTICS_SITE, bytes(32))
    return Delivered(build_envelope(content, b"", signer), Location("t", 0, version), [])


def delivery(
    shipment_id: str,
    dins: list[str],
    received_at: datetime | None = DELIVERED,
    site: str = SITE,
) -> logistics.ShipmentDelivered:
    return logistics.ShipmentDelivered(
        coi=COI,
        shipment_id=shipment_id,
        from_party="courier:C-17",
        destination_site_id=site,
        received_at=stamp(received_at) if received_at else None,
        destination_department="ward",
        manifest_dins=dins,
    )


class Projected:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = SqliteConsumerStore(path, CONSUMER_NAME)
        create_tables(self.store.connection)
        self.projection = FactsProjection()

    def feed(self, *batch: Delivered) -> tuple[int, int]:
        with self.store.transaction() as (unit_of_work, ledger):
            stats = apply_once(list(batch), ledger, unit_of_work, self.projection)
        return stats.applied, stats.duplicates

    def delivered_at(self, din: str, site: str = SITE) -> datetime | None:
        return FACTS_FEED.sqlite_facts(self.path).delivered_at(din[:13], site)


@pytest.fixture
def projected(tmp_path: Path) -> Projected:
    return Projected(tmp_path / "facts.sqlite")


def test_logistics_golden_delivery_is_known_per_unit_and_destination(
    projected: Projected,
) -> None:
    """Logistics' published contract (its golden vector): every manifest DIN, at the
    destination site, at the receipt's clinical time."""
    payload = (golden_dir("logistics") / "ShipmentDelivered.bin").read_bytes()
    golden = logistics.ShipmentDelivered.FromString(payload)
    assert list(golden.manifest_dins)
    assert projected.feed(envelope_of(golden)) == (1, 0)
    for din in golden.manifest_dins:
        known = projected.delivered_at(din, golden.destination_site_id)
        assert known == golden.received_at.ToDatetime(UTC)
        assert projected.delivered_at(din, OTHER_SITE) is None


def test_the_earliest_delivery_of_a_unit_to_a_site_stands(projected: Projected) -> None:
    dins = [product_din(1), product_din(2)]
    projected.feed(envelope_of(delivery("s-1", dins, DELIVERED)))
    projected.feed(envelope_of(delivery("s-1", dins, DELIVERED)))  # redelivered: nothing new
    projected.feed(envelope_of(delivery("s-2", dins[:1], DELIVERED + timedelta(days=2))))
    projected.feed(envelope_of(delivery("s-3", dins[1:], DELIVERED - timedelta(hours=1))))
    assert projected.delivered_at(dins[0]) == DELIVERED
    assert projected.delivered_at(dins[1]) == DELIVERED - timedelta(hours=1)
    projected.feed(envelope_of(delivery("s-4", dins[:1], DELIVERED, OTHER_SITE)))
    assert projected.delivered_at(dins[0], OTHER_SITE) == DELIVERED
    assert projected.delivered_at(product_din(3)) is None


def test_a_delivery_without_its_time_takes_the_envelope_time(projected: Projected) -> None:
    projected.feed(envelope_of(delivery("s-1", [product_din(1)], None)))
    assert projected.delivered_at(product_din(1)) == RELEASED_AT + timedelta(days=3)


def test_a_malformed_delivery_is_skipped_not_projected(
    projected: Projected, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    projected.feed(envelope_of(delivery("s-1", ["not-a-din"])))
    projected.feed(envelope_of(delivery("s-2", [product_din(1)], site=" ")))
    assert projected.delivered_at(product_din(1)) is None
    assert sum("skipped" in record.getMessage() for record in caplog.records) == 2


def test_infusion_reads_logistics_topic_in_a_feed_that_replays() -> None:
    """A new feed (and consumer name), so a store made before reads every topic again from its
    start and learns the deliveries made before the upgrade."""
    assert "logistics" in FACTS_FEED.contexts
    assert FACTS_FEED.name == "facts-v3" and CONSUMER_NAME == "infusion-facts-v3"
