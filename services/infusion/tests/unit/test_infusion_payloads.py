"""Outbox payloads: every event of the published application is mapped, attributed to a valid
COI (its Kafka key) and matches its golden vector; internal events are never published; the
relay publishes a whole history as verifiable signed chains."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from google.protobuf import json_format

import v2v_infusion.domain
from v2v.infusion.events.v1 import events_pb2
from v2v_infusion.adapters.payloads import PAYLOAD_MAPPERS
from v2v_infusion.application import Administration, AdverseEventReport, InfusionApplication
from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.mismatches import BedsideMismatch, UnattributableScan
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.relay_spec import RELAY_SPEC
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent, LocalCreated, LocalEvent
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.errors import Refused
from v2v_platform.ids import Coi
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.testing.aggregates import domain_aggregates, event_classes
from v2v_testkit.golden import infusion as golden
from v2v_testkit.infusion import (
    COI,
    FIRST_NURSE,
    OTHER_COI,
    SECOND_NURSE,
    SIGNATURE_REQUEST,
    SITE,
    Clock,
    InMemoryFacts,
    nurse,
    physician,
    product_din,
    receive_released,
    scanning,
    verify_at_bedside,
    witnessing,
)

PUBLISHED_AGGREGATES: set[type] = {ProductAtSite, BedsideMismatch, FailureAcknowledgement}
INTERNAL_AGGREGATES: set[type] = {UnattributableScan}
SIGNER = SiteSigningKey.from_seed(SITE, bytes(range(32)))


def test_every_aggregate_is_either_published_or_internal() -> None:
    assert domain_aggregates(v2v_infusion.domain) == PUBLISHED_AGGREGATES | INTERNAL_AGGREGATES


def test_relay_spec_maps_every_event_class_of_the_published_application() -> None:
    published = event_classes(PUBLISHED_AGGREGATES)
    assert published == set(PAYLOAD_MAPPERS)
    assert RELAY_SPEC.application is InfusionApplication and RELAY_SPEC.context == "infusion"
    for event_class in published:
        assert issubclass(event_class, AttributedCreated | AttributedEvent), event_class


def test_internal_events_have_no_mapper_and_no_coi_of_their_own() -> None:
    internal = event_classes(INTERNAL_AGGREGATES)
    assert internal and not internal & set(PAYLOAD_MAPPERS)
    for event_class in internal:
        assert issubclass(event_class, LocalCreated | LocalEvent), event_class
        assert "coi" not in event_class.__annotations__


def test_every_message_has_a_golden_vector() -> None:
    messages = set(events_pb2.DESCRIPTOR.message_types_by_name)
    assert set(golden.golden_payloads()) == messages
    assert {path.stem for path in golden.GOLDEN_DIR.glob("*.bin")} == messages


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_producer_builds_exactly_the_golden_vector(name: str) -> None:
    payload = golden.golden_payloads()[name]
    expected = (golden.GOLDEN_DIR / f"{name}.bin").read_bytes()
    assert payload.SerializeToString(deterministic=True) == expected
    assert golden.to_json(payload) == (golden.GOLDEN_DIR / f"{name}.json").read_text()


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_consumer_decodes_the_golden_vector(name: str) -> None:
    message_class = getattr(events_pb2, name)
    decoded = message_class.FromString((golden.GOLDEN_DIR / f"{name}.bin").read_bytes())
    from_json = json_format.Parse((golden.GOLDEN_DIR / f"{name}.json").read_text(), message_class())
    assert decoded == from_json
    assert decoded.coi.startswith("CH")


class RecordingBroker:
    """Stands in for Kafka: acknowledges every record."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


def full_history(app: InfusionApplication, facts: InMemoryFacts, clock: Clock) -> None:
    facts.enrol()
    din = receive_released(app, facts, condition=Condition.CRYO)
    with pytest.raises(Refused):
        app.scan_at_bedside(OTHER_COI, din, None, scanning(), nurse())  # on the unit
    with pytest.raises(Refused):
        app.scan_at_bedside(
            COI, product_din(99), None, scanning(), nurse()
        )  # on the wristband's chain
    with pytest.raises(Refused):
        app.scan_at_bedside("bad", "bad", None, scanning(), nurse())  # unpublished records only
    stored = receive_released(app, facts, 2)
    app.store_product(stored, "FRIDGE-2", None, nurse())
    verify_at_bedside(app, din)
    witness = (SECOND_NURSE, "Nurse u-nurse-2")
    given = Administration(din, None, 1.0e6, 60.0, *witness, witnessing(SECOND_NURSE))
    app.administer_infusion(given, nurse(FIRST_NURSE))
    clock.advance(hours=30)
    app.record_adverse_event(AdverseEventReport(din, "icans", 1, None), nurse())
    alert = facts.fail(dins=[din])
    app.acknowledge_alert(alert.failure_id, "observe closely", SIGNATURE_REQUEST, physician())


def test_relay_publishes_the_whole_history_as_verifiable_chains(
    app: InfusionApplication, facts: InMemoryFacts, clock: Clock
) -> None:
    full_history(app, facts, clock)
    broker = RecordingBroker()
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=RELAY_SPEC.translator,
        signer=SIGNER,
        state=InMemoryRelayState(),
        publisher=broker,
        topic="v2v.infusion.events.v1",
    )
    relay.publish_pending()
    ring = KeyRing()
    ring.add(SITE, SIGNER.public_key)
    verifier = ChainVerifier(ring)
    envelopes = [decode(r.value) for r in broker.records]
    assert not [b for e in envelopes for b in verifier.feed(e, Location("t", 0, 0))]
    types = {e.event_type.rsplit(".", 1)[1] for e in envelopes}
    assert types == set(golden.golden_payloads())
    for record, envelope in zip(broker.records, envelopes, strict=True):
        assert envelope.actor.user_id and envelope.actor.role and envelope.site_id == SITE
        assert Coi.parse(envelope.coi).value == envelope.coi == COI
        assert record.key == envelope.coi.encode()
    assert {e.aggregate_type for e in envelopes} == {p.__name__ for p in PUBLISHED_AGGREGATES}
    [acknowledged] = [e for e in envelopes if e.aggregate_type == "FailureAcknowledgement"]
    assert acknowledged.signature_meaning == 4  # responsibility
    assert acknowledged.actor.user_id == "u-doc"
