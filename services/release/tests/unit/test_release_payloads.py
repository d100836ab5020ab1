"""Outbox payloads: every event of the BatchRelease aggregate is mapped, attributed to a valid
COI (its Kafka key), matches its golden vector, and the relay publishes verifiable chains."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from google.protobuf import json_format

from v2v.events.v1 import envelope_pb2
from v2v.release.events.v1 import events_pb2
from v2v_platform.conditions import Condition
from v2v_platform.domain_events import AttributedCreated, AttributedEvent
from v2v_platform.envelope import ChainVerifier, Location, decode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import Coi
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.testing.aggregates import event_classes
from v2v_release.adapters.payloads import PAYLOAD_MAPPERS
from v2v_release.application import ReleaseApplication
from v2v_release.domain.batch_release import BatchRelease
from v2v_release.domain.values import Correction
from v2v_release.relay_spec import RELAY_SPEC
from v2v_testkit.golden import release as golden
from v2v_testkit.release import (
    BATCH_ID,
    OTHER_BATCH_ID,
    POST_RELEASE,
    PRE_RELEASE,
    QC_SITE,
    InMemoryReleaseFacts,
    physician,
    physician_signature,
    qc,
    qp_signature,
    record,
    report,
)

APPROVAL = envelope_pb2.SIGNATURE_MEANING_APPROVAL
RESPONSIBILITY = envelope_pb2.SIGNATURE_MEANING_RESPONSIBILITY
SIGNER = SiteSigningKey.from_seed(QC_SITE, bytes(range(32)))
THIRD_BATCH_ID = "6e5d4c3b-2a19-4f08-b7e6-d5c4b3a29180"


def test_every_event_class_is_mapped_and_attributed() -> None:
    assert event_classes([BatchRelease]) == set(PAYLOAD_MAPPERS)
    assert RELAY_SPEC.application is ReleaseApplication and RELAY_SPEC.context == "release"
    for event_class in event_classes([BatchRelease]):
        assert issubclass(event_class, AttributedCreated | AttributedEvent), event_class


def test_every_message_has_a_golden_vector() -> None:
    messages = {
        name
        for name in events_pb2.DESCRIPTOR.message_types_by_name
        if name != "TestCriterion"  # a part of BatchReleaseOpened, not an event
    }
    assert set(golden.golden_payloads()) == messages
    assert {path.stem for path in golden.GOLDEN_DIR.glob("*.bin")} == messages


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_producer_builds_exactly_the_golden_vector(name: str) -> None:
    payload = golden.golden_payloads()[name]
    binary = (golden.GOLDEN_DIR / f"{name}.bin").read_bytes()
    assert payload.SerializeToString(deterministic=True) == binary
    assert golden.to_json(payload) == (golden.GOLDEN_DIR / f"{name}.json").read_text()


@pytest.mark.parametrize("name", sorted(golden.golden_payloads()))
def test_consumer_decodes_the_golden_vector(name: str) -> None:
    message_class = getattr(events_pb2, name)
    decoded = message_class.FromString((golden.GOLDEN_DIR / f"{name}.bin").read_bytes())
    from_json = json_format.Parse((golden.GOLDEN_DIR / f"{name}.json").read_text(), message_class())
    assert decoded == from_json
    assert decoded.coi.startswith("CH") and decoded.batch_id == golden.BATCH_ID


def test_signed_messages_carry_their_full_manifestation() -> None:
    payloads = golden.golden_payloads()
    for name, field in [
        ("ProvisionallyCertified", "qp_signature"),
        ("FinallyCertified", "qp_signature"),
        ("BatchRejected", "qp_signature"),
        ("OosReleaseJustified", "qp_signature"),
        ("OosReleaseAccepted", "physician_signature"),
    ]:
        signature = getattr(payloads[name], field)
        assert signature.printed_name and signature.meaning and signature.record_hash, name
        assert signature.signed_at.seconds, name


class RecordingBroker:
    """Stands in for Kafka: acknowledges every record."""

    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


def full_history(app: ReleaseApplication, facts: InMemoryReleaseFacts) -> None:
    wrong = app.record_qc_result(BATCH_ID, report("viability", "50"), None, qc())
    fix = Correction(wrong.result_id, "sample mislabelled")
    app.record_qc_result(BATCH_ID, report("viability"), fix, qc())
    record(app, PRE_RELEASE[1:])
    app.certify_provisionally(BATCH_ID, qp_signature(), qc())
    app.record_qc_result(BATCH_ID, report("sterility", "positive"), None, qc())
    app.reject(BATCH_ID, "sterility positive", qp_signature(), qc())
    facts.started(OTHER_BATCH_ID)
    facts.harvested(OTHER_BATCH_ID)
    record(app, PRE_RELEASE, OTHER_BATCH_ID, viability="60")
    app.justify_oos_release(OTHER_BATCH_ID, "no alternative", qp_signature(), qc())
    app.accept_oos_release(OTHER_BATCH_ID, physician_signature(), physician())
    facts.started(THIRD_BATCH_ID)
    facts.harvested(THIRD_BATCH_ID, Condition.CRYO)
    record(app, PRE_RELEASE + POST_RELEASE, THIRD_BATCH_ID)
    app.certify_finally(THIRD_BATCH_ID, qp_signature(), qc())


def test_relay_publishes_the_whole_history_as_verifiable_chains(
    app: ReleaseApplication, facts: InMemoryReleaseFacts
) -> None:
    full_history(app, facts)
    broker = RecordingBroker()
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=RELAY_SPEC.translator,
        signer=SIGNER,
        state=InMemoryRelayState(),
        publisher=broker,
        topic="v2v.release.events.v1",
    )
    relay.publish_pending()
    ring = KeyRing()
    ring.add(QC_SITE, SIGNER.public_key)
    verifier = ChainVerifier(ring)
    envelopes = [decode(r.value) for r in broker.records]
    assert not [b for e in envelopes for b in verifier.feed(e, Location("t", 0, 0))]
    types = {e.event_type.rsplit(".", 1)[1] for e in envelopes}
    assert types == set(golden.golden_payloads())
    for record_, envelope in zip(broker.records, envelopes, strict=True):
        assert Coi.parse(envelope.coi).value == envelope.coi
        assert record_.key == envelope.coi.encode()
        assert envelope.aggregate_type == "BatchRelease" and envelope.site_id == QC_SITE
    by_type = {e.event_type.rsplit(".", 1)[1]: e for e in envelopes}
    assert by_type["BatchRejected"].reason == "sterility positive"
    assert by_type["ProvisionallyCertified"].signature_meaning == APPROVAL
    assert by_type["OosReleaseAccepted"].signature_meaning == RESPONSIBILITY
    assert by_type["OosReleaseAccepted"].actor.role == "infusion"
    corrected = [
        e
        for e in envelopes
        if e.event_type.endswith("QcResultRecorded")
        and events_pb2.QcResultRecorded.FromString(e.payload).corrects_result_id
    ]
    assert [e.reason for e in corrected] == ["sample mislabelled"]
