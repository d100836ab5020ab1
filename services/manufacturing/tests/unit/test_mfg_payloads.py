"""Outbox payloads: every stored event class is published, attributed, and matches its golden."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from eventsourcing.domain import Aggregate
from google.protobuf import json_format

from v2v.manufacturing.events.v1 import events_pb2
from v2v_manufacturing.adapters import golden
from v2v_manufacturing.adapters.payloads import PAYLOAD_MAPPERS
from v2v_manufacturing.application import ManufacturingApplication
from v2v_manufacturing.domain.batch import Batch
from v2v_manufacturing.domain.calendar import SlotCalendar
from v2v_manufacturing.domain.din_sequence import ProductDinSequence
from v2v_manufacturing.domain.receipt import ReceiptMismatch, ReceivedUnit
from v2v_manufacturing.domain.values import (
    Condition,
    ProcessStep,
    QcResult,
    StepKind,
    WindowOverride,
)
from v2v_manufacturing.relay_spec import RELAY_SPEC
from v2v_manufacturing.testing import (
    COI,
    Clock,
    InMemoryIntakeFacts,
    apheresis_din,
    operator,
    receive,
)
from v2v_platform.attribution import SignatureManifestation
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.errors import Refused
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay

AGGREGATES = (SlotCalendar, ReceivedUnit, ReceiptMismatch, Batch, ProductDinSequence)
PRODIGY = ProcessStep(StepKind.SELECTION, "CliniMACS Prodigy", "PRD-0042", ("CD4/CD8-L1",))
SIGNER = SiteSigningKey.from_seed("GMP-B", bytes(range(32)))


def stored_event_classes() -> set[type]:
    found = set()
    for aggregate in AGGREGATES:
        for value in vars(aggregate).values():
            if (
                isinstance(value, type)
                and issubclass(value, Aggregate.Event)
                and value.__qualname__.startswith(f"{aggregate.__name__}.")
                and value.__name__ not in ("Event", "Created")
            ):
                found.add(value)
    return found


def test_every_stored_event_class_has_a_payload_mapper() -> None:
    assert stored_event_classes() == set(PAYLOAD_MAPPERS)


def test_every_message_of_the_package_has_a_golden_vector() -> None:
    messages = {
        name
        for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items()
        if name != "ProcessParameter"
    }
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


def full_history(app: ManufacturingApplication, facts: InMemoryIntakeFacts, clock: Clock) -> None:
    first = receive(app, facts, 1)
    with pytest.raises(Refused):
        app.receive_unit(apheresis_din(99), COI, operator())
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
    app.set_slot_capacity("GMP-B", "2025-06-02", 9, operator())
    slot = app.book_slot(COI, "GMP-B", "2025-06-02", operator("HOSP-A", "collection"))
    app.release_slot(slot.slot_id, operator().because("cancelled"))


def test_relay_publishes_the_whole_history_as_verifiable_chains(
    app: ManufacturingApplication, facts: InMemoryIntakeFacts, clock: Clock
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
    for envelope in envelopes:
        assert envelope.actor.user_id and envelope.actor.role and envelope.site_id
        key = next(r.key for r in broker.records if decode(r.value) == envelope)
        assert key == envelope.coi.encode()
    started = [e for e in envelopes if e.event_type.endswith("BatchStarted")]
    assert all(e.signature_meaning == 3 and e.reason == "urgent" for e in started)  # approval
    batch_events = [e for e in envelopes if e.aggregate_type == "Batch"]
    assert {e.coi for e in batch_events} == {COI}
    site_level = [
        e for e in envelopes if e.aggregate_type in ("SlotCalendar", "ProductDinSequence")
    ]
    assert site_level and {e.coi for e in site_level} == {""}
