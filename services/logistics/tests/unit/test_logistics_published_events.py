"""Outbox payloads: every event of the published application is mapped, attributed to the
shipment's valid COI (its Kafka key) and matches its golden vector; internal events are never
published; a whole journey relays as verifiable signed chains."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from google.protobuf import json_format

import v2v_logistics.domain
from v2v.logistics.events.v1 import events_pb2
from v2v_logistics.adapters.payloads import PAYLOAD_MAPPERS
from v2v_logistics.application import LogisticsApplication
from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.shipment import Shipment
from v2v_logistics.domain.unit_listing import UnitListing
from v2v_logistics.domain.values import ExceptionKind, Reading
from v2v_logistics.relay_spec import RELAY_SPEC
from v2v_platform.attribution import SignatureManifestation, WindowOverride
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, LocalCreated, LocalEvent
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import Coi
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.testing.aggregates import domain_aggregates, event_classes
from v2v_testkit.golden import logistics as golden
from v2v_testkit.logistics import (
    COI,
    ORIGIN,
    SERVICE_SITE,
    Clock,
    InMemoryFacts,
    attempt,
    courier,
    din,
    hand_to_courier,
    new_shipment,
    offer,
    site_user,
)

PUBLISHED_AGGREGATES: set[type] = {Shipment}
INTERNAL_AGGREGATES: set[type] = {UnitListing}
SIGNER = SiteSigningKey.from_seed(SERVICE_SITE, bytes(range(32)))


def test_every_aggregate_is_either_published_or_internal() -> None:
    assert domain_aggregates(v2v_logistics.domain) == PUBLISHED_AGGREGATES | INTERNAL_AGGREGATES


def test_relay_spec_maps_every_event_class_of_the_published_application() -> None:
    published = event_classes(PUBLISHED_AGGREGATES, exclude=("Event",))
    assert published == set(PAYLOAD_MAPPERS)
    assert RELAY_SPEC.application is LogisticsApplication and RELAY_SPEC.context == "logistics"
    for event_class in published:
        assert issubclass(event_class, AttributedCreated | AttributedEvent), event_class


def test_internal_events_have_no_mapper_and_no_coi_of_their_own() -> None:
    internal = event_classes(INTERNAL_AGGREGATES, exclude=("Event",))
    assert internal and not internal & set(PAYLOAD_MAPPERS)
    for event_class in internal:
        assert issubclass(event_class, LocalCreated | LocalEvent), event_class
        assert "coi" not in event_class.__annotations__


def published_messages() -> set[str]:
    return {
        name
        for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
        if name != "TemperatureReading" and not descriptor.GetOptions().deprecated
    }


def test_every_published_message_has_a_golden_vector() -> None:
    messages = published_messages()
    assert set(golden.golden_payloads()) == messages
    assert {path.stem for path in golden.GOLDEN_DIR.glob("*.bin")} == messages


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_producer_builds_exactly_the_golden_vector(name: str) -> None:
    payload = golden.golden_payloads()[name]
    assert (
        payload.SerializeToString(deterministic=True)
        == (golden.GOLDEN_DIR / f"{name}.bin").read_bytes()
    )
    assert golden.to_json(payload) == (golden.GOLDEN_DIR / f"{name}.json").read_text()


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_consumer_decodes_the_golden_vector(name: str) -> None:
    message_class = getattr(events_pb2, name)
    decoded = message_class.FromString((golden.GOLDEN_DIR / f"{name}.bin").read_bytes())
    from_json = json_format.Parse((golden.GOLDEN_DIR / f"{name}.json").read_text(), message_class())
    assert decoded == from_json
    assert decoded.coi == golden.COI and decoded.shipment_id == str(golden.SHIPMENT_ID)


class RecordingBroker:
    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


def whole_journey(app: LogisticsApplication, facts: InMemoryFacts, clock: Clock) -> None:
    units = [facts.package(din(1)), facts.package(din(2))]
    shipment_id = app.create_shipment(new_shipment(units), site_user()).shipment_id
    app.assign_courier(shipment_id, "C-2", site_user())
    app.assign_courier(shipment_id, "C-1", site_user())  # offered to C-1 again
    with pytest.raises(ScanRefused):
        app.scan(shipment_id, attempt("courier:C-1", f"site:{ORIGIN}", clock(), din(50)), courier())
    hand_to_courier(app, shipment_id, units, "C-1", f"site:{ORIGIN}", clock())
    offer(app, shipment_id, "courier:C-1", "site:GMP-B", clock())
    app.upload_readings(
        shipment_id,
        [Reading(clock() + timedelta(minutes=n), t, "LOGGER-5") for n, t in enumerate([5, 12, 5])],
        site_user(),
    )
    clock.advance(hours=50)
    receiver = site_user("GMP-B", "manufacturing")
    with pytest.raises(ScanRefused):
        app.receive_shipment(shipment_id, units, "courier:C-1", None, receiver)
    approval = SignatureManifestation("u-qp", "Dr. Q", "approval", clock())
    override = WindowOverride("urgent", approval)
    app.receive_shipment(shipment_id, units, "courier:C-1", override, receiver)
    app.inspect_receipt(shipment_id, True, True, "", receiver)
    other = facts.package(din(3))
    lost = app.create_shipment(new_shipment([other]), site_user()).shipment_id
    app.record_exception(lost, ExceptionKind.LOST, site_user().because("no trace"))


def test_relay_publishes_the_whole_journey_as_verifiable_chains(
    app: LogisticsApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    whole_journey(app, facts, clock)
    broker = RecordingBroker()
    OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=RELAY_SPEC.translator,
        signer=SIGNER,
        state=InMemoryRelayState(),
        publisher=broker,
        topic="v2v.logistics.events.v1",
    ).publish_pending()
    ring = KeyRing()
    ring.add(SERVICE_SITE, SIGNER.public_key)
    verifier = ChainVerifier(ring)
    envelopes = [decode(r.value) for r in broker.records]
    assert not [b for e in envelopes for b in verifier.feed(e, Location("t", 0, 0))]
    assert {e.event_type.rsplit(".", 1)[1] for e in envelopes} == set(golden.golden_payloads())
    for record, envelope in zip(broker.records, envelopes, strict=True):
        assert Coi.parse(envelope.coi).value == envelope.coi == COI
        assert record.key == envelope.coi.encode()
        assert envelope.site_id == SERVICE_SITE and envelope.actor.user_id
    [delivered] = [e for e in envelopes if e.event_type.endswith("ShipmentDelivered")]
    assert delivered.reason == "urgent" and delivered.signature_meaning == 3  # approval
    couriers = [e for e in envelopes if e.actor.role == "courier"]
    assert couriers and all(e.actor.user_id == "C-1" for e in couriers)
