"""Outbox payloads: every event of the published application is mapped, attributed to a valid
COI (its Kafka key) and matches its golden vector; internal events are never published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from google.protobuf import json_format

import v2v_manufacturing.domain
from v2v.manufacturing.events.v1 import events_pb2
from v2v_manufacturing.adapters.payloads import PAYLOAD_MAPPERS, batch_started
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.batch_mismatch import BatchInputsMismatch
from v2v_manufacturing.domain.calendar import SlotCalendar
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit, UnattributableScan
from v2v_manufacturing.domain.slot_booking import SlotBooking
from v2v_manufacturing.domain.values import (
    ProcessStep,
    QcResult,
    StepKind,
)
from v2v_manufacturing.relay_spec import RELAY_SPEC
from v2v_platform.attribution import SignatureManifestation, WindowOverride
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import (
    AttributedCreated,
    AttributedEvent,
    LocalCreated,
    LocalEvent,
)
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.errors import Refused
from v2v_platform.ids import Coi
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.testing.aggregates import domain_aggregates, event_classes
from v2v_testkit.golden import manufacturing as golden
from v2v_testkit.manufacturing import (
    COI,
    DAY,
    GMP,
    HOSPITAL,
    OTHER_COI,
    Clock,
    InMemoryManufacturingFacts,
    apheresis_din,
    operator,
    receive,
)

PUBLISHED_AGGREGATES: set[type] = {
    SlotBooking,
    ReceivedUnit,
    ReceiptMismatch,
    Batch,
    BatchInputsMismatch,
}
INTERNAL_AGGREGATES: set[type] = {SlotCalendar, ProductDinSequence, UnattributableScan}
PRODIGY = ProcessStep(StepKind.SELECTION, "CliniMACS Prodigy", "PRD-0042", ("CD4/CD8-L1",))
SIGNER = SiteSigningKey.from_seed("GMP-B", bytes(range(32)))


def test_every_aggregate_is_either_published_or_internal() -> None:
    assert domain_aggregates(v2v_manufacturing.domain) == PUBLISHED_AGGREGATES | INTERNAL_AGGREGATES


def test_relay_spec_maps_every_event_class_of_the_published_application() -> None:
    published = event_classes(PUBLISHED_AGGREGATES)
    assert published == set(PAYLOAD_MAPPERS)
    assert RELAY_SPEC.application is ManufacturingApplication
    for event_class in published:  # each carries its chain's COI and who/where/why
        assert issubclass(event_class, AttributedCreated | AttributedEvent), event_class


def test_internal_events_have_no_mapper_and_no_coi_of_their_own() -> None:
    internal = event_classes(INTERNAL_AGGREGATES)
    assert internal and not internal & set(PAYLOAD_MAPPERS)
    for event_class in internal:
        assert issubclass(event_class, LocalCreated | LocalEvent), event_class
        assert "coi" not in event_class.__annotations__


def published_messages() -> set[str]:
    """The package's event messages, less the part message and the deprecated ones."""
    return {
        name
        for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
        if name != "ProcessParameter" and not descriptor.GetOptions().deprecated
    }


def test_no_longer_published_messages_are_deprecated_and_kept() -> None:
    deprecated = {
        name
        for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
        if descriptor.GetOptions().deprecated
    }
    assert deprecated == {"SlotCapacitySet", "ProductDinsReserved"}


def test_every_published_message_has_a_golden_vector() -> None:
    messages = published_messages()
    assert set(golden.golden_payloads()) == messages
    on_disk = {path.stem for path in golden.GOLDEN_DIR.glob("*.bin")}
    assert on_disk == messages


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
    if hasattr(decoded, "coi"):
        assert decoded.coi.startswith("CH")


class RecordingBroker:
    """Stands in for Kafka: acknowledges every record."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


def full_history(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
) -> None:
    first = receive(app, facts, 1)
    with pytest.raises(Refused):
        app.receive_unit(apheresis_din(99), COI, operator())
    with pytest.raises(Refused):  # unattributable: kept in the unpublished records only
        app.receive_unit(apheresis_din(98), "not a COI", operator())
    clock.advance(hours=40)
    approval = SignatureManifestation("u-qp", "Dr. Q", "approval", datetime(2025, 6, 3, tzinfo=UTC))
    batch_id = app.start_batch([first], WindowOverride("urgent", approval), operator()).batch_id
    app.record_process_step(batch_id, PRODIGY, operator())
    app.record_in_process_qc(batch_id, QcResult("viability", 91.0, "%", True), operator())
    app.harvest(batch_id, 2, Condition.CRYO, operator())
    second = app.start_batch(
        [receive(app, facts, 2)], WindowOverride("urgent", approval), operator()
    )
    app.harvest(second.batch_id, 1, Condition.CRYO, operator())
    third = app.start_batch(
        [receive(app, facts, 3)], WindowOverride("urgent", approval), operator()
    )
    app.fail_batch(third.batch_id, operator().because("no growth"))
    app.set_slot_capacity(GMP, DAY, 9, operator())
    slot = app.book_slot(COI, GMP, DAY, operator(HOSPITAL, "collection"))
    app.release_slot(slot.slot_id, operator().because("cancelled"))
    # a booking interrupted between its two saves, then retried
    collector = operator(HOSPITAL, "collection")
    app.unpublished.reserve_slot(GMP, date.fromisoformat(DAY), COI, HOSPITAL, collector)
    app.book_slot(COI, GMP, DAY, collector)
    # a batch of two patients' units: refused, recorded on both chains (issue 14)
    theirs = receive(app, facts, 4, coi=OTHER_COI)
    with pytest.raises(Refused, match="mixed-coi"):
        app.start_batch([receive(app, facts, 5), theirs], None, operator())


def test_relay_publishes_the_whole_history_as_verifiable_chains(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts, clock: Clock
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
        topic="v2v.manufacturing.events.v1",
    )
    relay.publish_pending()
    ring = KeyRing()
    ring.add("GMP-B", SIGNER.public_key)
    verifier = ChainVerifier(ring)
    envelopes = [decode(r.value) for r in broker.records]
    breaks = [b for e in envelopes for b in verifier.feed(e, Location("t", 0, 0))]
    assert not breaks
    types = {e.event_type.rsplit(".", 1)[1] for e in envelopes}
    assert types == set(golden.golden_payloads())
    for record, envelope in zip(broker.records, envelopes, strict=True):
        assert envelope.actor.user_id and envelope.actor.role and envelope.site_id
        assert Coi.parse(envelope.coi).value == envelope.coi  # a valid COI on every event
        assert record.key == envelope.coi.encode()  # ... and it is the Kafka key
    started = [e for e in envelopes if e.event_type.endswith("BatchStarted")]
    assert all(e.signature_meaning == 3 and e.reason == "urgent" for e in started)  # approval
    batch_events = [e for e in envelopes if e.aggregate_type == "Batch"]
    assert {e.coi for e in batch_events} == {COI}
    assert {e.aggregate_type for e in envelopes} == {p.__name__ for p in PUBLISHED_AGGREGATES}
    bookings = [e for e in envelopes if e.aggregate_type == "SlotBooking"]
    assert len(bookings) == 5 and {e.coi for e in bookings} == {COI, OTHER_COI}
    mismatches = [e for e in envelopes if e.aggregate_type == "BatchInputsMismatch"]
    assert sorted(e.coi for e in mismatches) == sorted([COI, OTHER_COI])
    assert {e.site_id for e in bookings} == {GMP}  # authored and signed by this site


def test_a_batch_started_before_the_rules_were_versioned_is_published_without_a_tag(
    app: ManufacturingApplication, facts: InMemoryManufacturingFacts
) -> None:
    """A `Batch.Started` stored as class version 1 (no `protocol_rules`) is upcast: "" (not
    recorded), as consumers already saw it; the window it applied is still on the event."""
    app.start_batch([receive(app, facts, 1)], None, operator())
    notifications = app.recorder.select_notifications(1, 1000)
    [stored] = [n for n in notifications if n.topic.endswith(":Batch.Started")]
    state = app.mapper.transcoder.decode(stored.state)
    assert state.pop("class_version") == 2 and state.pop("protocol_rules") == "v1"
    old = replace(stored, state=app.mapper.transcoder.encode(state))
    upcast = app.mapper.to_domain_event(old)
    assert isinstance(upcast, Batch.Started)
    assert (upcast.protocol_rules, upcast.fresh_window_hours) == ("", 48)
    assert batch_started(upcast).protocol_rules == ""
