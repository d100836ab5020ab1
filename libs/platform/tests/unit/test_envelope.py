"""Envelope: golden vectors (producer and consumer side), hashing, signing, verification."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import pytest
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.protobuf.struct_pb2 import Struct
from hypothesis import given
from hypothesis import strategies as st

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope import (
    ChainVerifier,
    KeyRing,
    Location,
    SiteSigningKey,
    decode,
    encode,
    envelope_hash,
    event_id_for,
    verify_envelope,
)
from v2v_platform.envelope.codec import (
    V2V_EVENT_NAMESPACE,
    Actor,
    EnvelopeContent,
    build_envelope,
    hash_matches,
    seal,
)
from v2v_platform.envelope.verify import (
    CHECK_EVENT_ID,
    CHECK_FORK,
    CHECK_HASH,
    CHECK_PREV_HASH,
    CHECK_SIGNATURE,
    CHECK_SIGNER_SITE,
    CHECK_VERSION_GAP,
)
from v2v_testkit.golden import envelope as golden

HERE = Location("test", 0, 0)


def _checks(envelope: Envelope, ring: KeyRing) -> list[str]:
    return [b.check for b in verify_envelope(envelope, ring, HERE)]


# -- producer side: what we build today is byte-identical to the committed vectors ----------


@pytest.mark.parametrize("index", [0, 1])
def test_producer_builds_the_golden_binary(index: int) -> None:
    envelope = golden.golden_chain()[index]
    binary, _ = golden.golden_files(envelope.aggregate_version)
    assert encode(envelope) == binary.read_bytes()


@pytest.mark.parametrize("index", [0, 1])
def test_producer_builds_the_golden_json(index: int) -> None:
    envelope = golden.golden_chain()[index]
    _, text = golden.golden_files(envelope.aggregate_version)
    assert golden.to_json(envelope) == text.read_text()


# -- consumer side: the committed vectors decode, verify and mean what they say -------------


def test_consumer_reads_and_verifies_the_golden_chain() -> None:
    ring = KeyRing.load(golden.GOLDEN_DIR / "signing-keys.json")
    verifier = ChainVerifier(ring)
    breaks = []
    for version in (1, 2):
        binary, text = golden.golden_files(version)
        from_binary = decode(binary.read_bytes())
        from_json = json_format.Parse(text.read_text(), Envelope())
        assert from_binary == from_json
        breaks += verifier.feed(from_binary, Location("golden", 0, version))
    assert breaks == []
    second = decode(golden.golden_files(2)[0].read_bytes())
    assert second.coi == "CHA123425000017"
    assert second.actor.printed_name == "Dr. Ada Example"
    assert second.reason == "volume corrected after re-weighing"
    assert second.event_type == "google.protobuf.Struct"
    payload = Struct()
    payload.ParseFromString(second.payload)
    assert payload["volume_ml"] == 212.5


# -- building --------------------------------------------------------------------------------


def test_event_id_is_deterministic_uuid5() -> None:
    assert event_id_for("agg", 3) == event_id_for("agg", 3)
    assert event_id_for("agg", 3) != event_id_for("agg", 4)


@given(aggregate_id=st.text(max_size=80), version=st.integers(min_value=0, max_value=2**64 - 1))
def test_event_id_is_the_uuid5_of_aggregate_and_version(aggregate_id: str, version: int) -> None:
    expected = uuid.uuid5(V2V_EVENT_NAMESPACE, f"{aggregate_id}:{version}")
    assert event_id_for(aggregate_id, version) == str(expected)


def _record_mutations() -> list[bytes]:
    """The golden record, then byte-level variants: flipped bytes everywhere, a cut tail, the
    hash and signature fields repeated or swapped, an unknown field after the signature."""
    data = encode(golden.golden_chain()[1])
    variants = [data]
    variants += [data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1 :] for i in range(len(data))]
    variants += [data[:-1], data + data[-67:], data + b"\x98\x01\x01"]
    hash_field, signature_field = data[-102:-67], data[-67:]
    variants += [data[:-102] + signature_field + hash_field, data[:-67] + hash_field]
    return variants


def test_hash_check_from_the_record_bytes_agrees_with_re_encoding() -> None:
    """`hash_matches(data, decode(data))` is `envelope_hash(...) == hash` on every variant that
    still decodes; the untouched record matches."""
    agreed = 0
    for data in _record_mutations():
        try:
            envelope = decode(data)
        except DecodeError:
            continue
        assert hash_matches(data, envelope) == (envelope_hash(envelope) == envelope.hash)
        agreed += 1
    assert agreed > 100
    assert hash_matches(encode(golden.golden_chain()[1]), golden.golden_chain()[1])


def test_first_version_has_empty_prev_hash_and_chain_links() -> None:
    first, second = golden.golden_chain()
    assert first.prev_hash == b""
    assert second.prev_hash == first.hash
    assert envelope_hash(second) == second.hash


def test_naive_timestamps_are_refused() -> None:
    content = _content(recorded_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_envelope(content, b"", golden.golden_signer())


def test_unknown_signature_meaning_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown signature meaning 'blessing'"):
        build_envelope(_content(signature_meaning="blessing"), b"", golden.golden_signer())


def test_a_site_cannot_sign_for_another_site() -> None:
    other = SiteSigningKey.generate("GMP-B")
    with pytest.raises(ValueError, match="cannot sign an envelope authored by 'HOSP-A'"):
        build_envelope(_content(), b"", other)


# -- verification reports which check failed ------------------------------------------------


def test_untouched_envelope_verifies_clean() -> None:
    assert _checks(golden.golden_chain()[0], golden.golden_key_ring()) == []


def test_changed_content_breaks_the_hash() -> None:
    envelope = golden.golden_chain()[0]
    envelope.actor.user_id = "u-9999"
    assert CHECK_HASH in _checks(envelope, golden.golden_key_ring())


def test_rehashed_content_breaks_the_signature() -> None:
    envelope = golden.golden_chain()[0]
    envelope.coi = "CHA123425000018"
    envelope.hash = envelope_hash(envelope)
    assert _checks(envelope, golden.golden_key_ring()) == [CHECK_SIGNATURE]


def test_resigned_with_a_foreign_key_is_detected() -> None:
    envelope = golden.golden_chain()[0]
    impostor = SiteSigningKey.generate("HOSP-A")
    forged = seal(envelope, envelope.prev_hash, impostor)
    assert _checks(forged, golden.golden_key_ring()) == [CHECK_SIGNATURE]


def test_signer_of_another_site_is_detected() -> None:
    envelope = golden.golden_chain()[0]
    other = SiteSigningKey.generate("GMP-B")
    ring = golden.golden_key_ring()
    ring.add("GMP-B", other.public_key)
    envelope.signing_key_id = other.key_id
    envelope.hash = envelope_hash(envelope)
    envelope.signature = other.sign(envelope.hash)
    assert _checks(envelope, ring) == [CHECK_SIGNER_SITE]


def test_wrong_event_id_is_detected() -> None:
    envelope = golden.golden_chain()[0]
    envelope.event_id = event_id_for(envelope.aggregate_id, 99)
    assert CHECK_EVENT_ID in _checks(envelope, golden.golden_key_ring())


def _stream(length: int) -> list[Envelope]:
    envelopes, prev = [], b""
    for version in range(1, length + 1):
        envelope = build_envelope(_content(version=version), prev, golden.golden_signer())
        envelopes.append(envelope)
        prev = envelope.hash
    return envelopes


def _verify_all(envelopes: list[Envelope]) -> list[str]:
    verifier = ChainVerifier(golden.golden_key_ring())
    return [b.check for i, e in enumerate(envelopes) for b in verifier.feed(e, Location("t", 0, i))]


def test_clean_stream_with_duplicates_verifies() -> None:
    stream = _stream(4)
    verifier = ChainVerifier(golden.golden_key_ring())
    for i, envelope in enumerate([*stream, stream[1], stream[3]]):
        assert verifier.feed(envelope, Location("t", 0, i)) == []
    assert verifier.duplicates_seen == 2


def test_deleted_event_is_a_version_gap_and_location_is_reported() -> None:
    stream = _stream(4)
    del stream[1]
    verifier = ChainVerifier(golden.golden_key_ring())
    breaks = [b for i, e in enumerate(stream) for b in verifier.feed(e, Location("t", 2, 10 + i))]
    assert [b.check for b in breaks] == [CHECK_VERSION_GAP]
    assert (breaks[0].location.partition, breaks[0].location.offset, breaks[0].version) == (
        2,
        11,
        3,
    )
    assert "t[2]@11" in str(breaks[0])


def test_reordered_events_are_detected() -> None:
    stream = _stream(3)
    stream[1], stream[2] = stream[2], stream[1]
    assert CHECK_VERSION_GAP in _verify_all(stream)


def test_relinked_chain_is_detected() -> None:
    stream = _stream(3)
    stream[2] = seal(stream[2], b"\x00" * 32, golden.golden_signer())
    assert _verify_all(stream) == [CHECK_PREV_HASH]


def test_a_different_envelope_for_a_seen_version_is_a_fork() -> None:
    stream = _stream(2)
    other = build_envelope(
        _content(version=2, reason="other"), stream[0].hash, golden.golden_signer()
    )
    assert _verify_all([*stream, other]) == [CHECK_FORK]


def test_garbage_bytes_are_a_decode_break() -> None:
    verifier = ChainVerifier(golden.golden_key_ring())
    breaks = verifier.feed_bytes(b"\xff\xff\xff", Location("t", 0, 5))
    assert [b.check for b in breaks] == ["decode"]


def _content(**changes: object) -> EnvelopeContent:
    base = EnvelopeContent(
        coi="CHA123425000017",
        aggregate_type="Collection",
        aggregate_id="agg-1",
        aggregate_version=1,
        payload=golden.golden_payload(),
        schema_version=1,
        recorded_at=datetime(2025, 3, 14, tzinfo=UTC),
        site_id=golden.SITE,
        actor=Actor("u-1", "Test User", "collection"),
    )
    renamed = {("aggregate_version" if k == "version" else k): v for k, v in changes.items()}
    return dataclasses.replace(base, **renamed)  # type: ignore[arg-type]
