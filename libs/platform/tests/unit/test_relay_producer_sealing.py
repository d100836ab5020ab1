"""The relay's cheaper sealing (issue 18, relay >= 2x events/s) makes the same bytes as the
codec: `PageSealer` + `sealed_bytes` against `codec.build_envelope` + `codec.encode` for
envelopes of every shape, and a relay page larger than a signing chunk (signed on the signing
threads, chunks taken back or not) against envelopes built one by one with the codec, chained
per aggregate, with the heads' signature digests the codec's signatures give."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.struct_pb2 import Struct

from v2v_platform import telemetry
from v2v_platform.checkpoints.merkle import signature_digest
from v2v_platform.envelope.codec import (
    GENESIS_PREV_HASH,
    Actor,
    EnvelopeContent,
    build_envelope,
    decode,
    encode,
    envelope_hash,
)
from v2v_platform.envelope.headers import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION
from v2v_platform.envelope.keys import SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.relay import InMemoryRelayState, OutboundRecord, OutboxRelay
from v2v_platform.relay.sealing import SIGN_CHUNK, PageSealer, SignatureBatch, sealed_bytes
from v2v_platform.testing.outbox_app import SITE_ID, SPEC, ChainApp

SIGNER = SiteSigningKey.from_seed(SITE_ID, b"\x11" * 32)
AT = datetime(2026, 3, 4, 5, 6, 7, 891_234, tzinfo=UTC)


@pytest.fixture(autouse=True, scope="module")
def tracing() -> None:
    telemetry.setup_tracing("test-relay-producer-sealing")


def _payload(size: int) -> Struct:
    payload = Struct()
    payload.update({"text": "x" * size, "n": size})
    return payload


CONTENTS = [
    EnvelopeContent(
        coi="CHA123425000017",
        aggregate_type="Therapy",
        aggregate_id="a-1",
        aggregate_version=1,
        payload=_payload(3),
        schema_version=1,
        recorded_at=AT,
        site_id=SITE_ID,
        actor=Actor("u-1", "Some One", "collection"),
    ),
    EnvelopeContent(  # every optional field, a payload beyond one-byte lengths
        coi="CHA123425000025",
        aggregate_type="Shipment",
        aggregate_id="b-2",
        aggregate_version=2**40,
        payload=_payload(20_000),
        schema_version=7,
        recorded_at=AT,
        site_id=SITE_ID,
        actor=Actor("u-2", "Ånother Öne", "logistics"),
        reason="a reason",
        signature_meaning="approval",
        occurred_at=AT - timedelta(days=400, microseconds=1),
    ),
    EnvelopeContent(  # an empty actor and payload, the epoch, a zone other than UTC
        coi="CHA123425000033",
        aggregate_type="T",
        aggregate_id="c",
        aggregate_version=3,
        payload=Struct(),
        schema_version=0,
        recorded_at=datetime(1970, 1, 1, tzinfo=UTC),
        site_id=SITE_ID,
        actor=Actor("", "", ""),
        occurred_at=datetime(2026, 1, 1, 1, tzinfo=UTC).astimezone(),
    ),
]


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("prev_hash", [GENESIS_PREV_HASH, b"\x42" * 32])
def test_the_page_sealer_makes_the_codecs_bytes(content: EnvelopeContent, prev_hash: bytes) -> None:
    sealer = PageSealer(SIGNER)
    body, digest = sealer.body(content, prev_hash)
    expected = build_envelope(content, prev_hash, SIGNER)
    assert digest == expected.hash == envelope_hash(expected)
    [signature] = sealer.signatures([digest]).result()
    assert signature == expected.signature
    assert sealed_bytes(body, digest, signature) == encode(expected)
    assert sealer.body(content, prev_hash) == (body, digest)  # the actor cache changes nothing


def test_the_page_sealer_refuses_what_the_codec_refuses() -> None:
    sealer = PageSealer(SiteSigningKey.from_seed("GMP-B", b"\x12" * 32))
    with pytest.raises(ValueError, match="cannot sign an envelope authored by"):
        sealer.body(CONTENTS[0], GENESIS_PREV_HASH)
    naive = EnvelopeContent(**{**CONTENTS[0].__dict__, "recorded_at": AT.replace(tzinfo=None)})
    with pytest.raises(ValueError, match="timezone-aware"):
        PageSealer(SIGNER).body(naive, GENESIS_PREV_HASH)


@pytest.mark.parametrize("count", [0, 1, SIGN_CHUNK - 1, SIGN_CHUNK, 5 * SIGN_CHUNK + 3])
def test_signatures_come_back_in_order_whichever_thread_made_them(count: int) -> None:
    digests = [bytes([n % 256]) * 32 for n in range(count)]
    batch = SignatureBatch(SIGNER, (), SIGN_CHUNK)
    for digest in digests:
        batch.add(digest)
    assert batch.result() == [SIGNER.sign(d) for d in digests]


class Acknowledging:
    def __init__(self) -> None:
        self.records: list[OutboundRecord] = []

    def publish(self, records: Sequence[OutboundRecord]) -> None:
        self.records.extend(records)


def test_a_relay_page_beyond_a_signing_chunk_is_sealed_as_the_codec_seals_it() -> None:
    app = ChainApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    cois = [str(issue_coi("A1234", 26, n)) for n in range(1, 11)]
    for coi in cois:
        app.start(coi)
    for seq in range(30):
        for coi in cois:
            app.note(coi, seq)
    state = InMemoryRelayState()
    broker = Acknowledging()
    relay = OutboxRelay(
        source=app.recorder,
        mapper=app.mapper,
        translator=SPEC.translator,
        signer=SIGNER,
        state=state,
        publisher=broker,
        topic="v2v.intake.events.v1",
        page_size=4 * SIGN_CHUNK + 5,
    )
    assert relay.publish_pending() == len(cois) * 31
    notifications = app.recorder.select_notifications(1, 10_000)
    heads: dict[str, tuple[bytes, bytes]] = {}
    assert len(broker.records) == len(notifications)
    for record, notification in zip(broker.records, notifications, strict=True):
        content = SPEC.translator.translate(app.mapper.to_domain_event(notification))
        assert content is not None
        content_ = content.content
        prev, digest = heads.get(content_.aggregate_id, (GENESIS_PREV_HASH, b""))
        expected = build_envelope(content_, prev, SIGNER)
        assert record.value == encode(expected)
        assert record.key == content_.coi.encode()
        headers = dict(record.headers)
        assert headers[HEADER_EVENT_TYPE] == expected.event_type.encode()
        assert headers[HEADER_SCHEMA_VERSION] == str(expected.schema_version).encode()
        assert headers[HEADER_EVENT_ID] == expected.event_id.encode()
        heads[content_.aggregate_id] = (
            expected.hash,
            signature_digest(digest, expected.signature),
        )
    assert {a: (h.hash, h.signatures) for a, h in state.all_heads().items()} == heads
    assert all(decode(r.value).signing_key_id == SIGNER.key_id for r in broker.records)
