"""The gate every consumer puts each record through: each reason code, a real site without the
role, a record of another context's topic, and a stream re-authored by another site."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.message import Message

from v2v.events.v1.envelope_pb2 import Envelope
from v2v.release.events.v1 import events_pb2 as release
from v2v_platform.envelope import (
    AUTHORSHIP,
    Actor,
    ChainVerifier,
    EnvelopeContent,
    EnvelopeGate,
    KeyRing,
    KeyRingFile,
    Location,
    SiteSigningKey,
    Untrusted,
    build_envelope,
    encode,
    envelope_hash,
    seal,
)

COI = "CHA123425000017"
QC = SiteSigningKey.generate("QC-1")
HOSPITAL = SiteSigningKey.generate("HOSP-A")
RELEASE = Location("v2v.release.events.v1", 2, 40)
INTAKE = Location("v2v.intake.events.v1", 2, 41)


def ring() -> KeyRing:
    keys = KeyRing()
    keys.add("QC-1", QC.public_key, ["qc"])
    keys.add("HOSP-A", HOSPITAL.public_key, ["collection", "infusion"])
    return keys


def certified(signer: SiteSigningKey, version: int = 1, site: str | None = None) -> Envelope:
    return sealed(release.FinallyCertified(coi=COI, batch_id="b-1"), signer, version, site)


def sealed(
    payload: Message, signer: SiteSigningKey, version: int = 1, site: str | None = None
) -> Envelope:
    content = EnvelopeContent(
        coi=COI,
        aggregate_type="BatchRelease",
        aggregate_id="release-b-1",
        aggregate_version=version,
        payload=payload,
        schema_version=1,
        recorded_at=datetime(2025, 6, 1, 12, 0, tzinfo=UTC),
        site_id=site or signer.site_id,
        actor=Actor("u-qp", "Quinn Person", "qp"),
    )
    return build_envelope(content, b"", signer)


def refused(found: Envelope | Untrusted) -> Untrusted:
    assert isinstance(found, Untrusted), found
    return found


GATE = EnvelopeGate(ring())


def test_a_genuine_record_passes_as_its_envelope() -> None:
    envelope = certified(QC)
    assert GATE.check(encode(envelope), RELEASE) == envelope


def test_a_record_that_is_not_an_envelope() -> None:
    found = refused(GATE.check(b"\xff\xff not an envelope", RELEASE, key=COI.encode()))
    assert found.reasons == ("decode",)
    assert (found.coi, found.claimed_site, found.raw) == (COI, "", b"\xff\xff not an envelope")
    assert found.location == RELEASE
    assert refused(GATE.check(None, RELEASE)).reasons == ("decode",)
    assert refused(GATE.check(b"", RELEASE, key=b"not-a-coi")).coi == ""


def test_a_wrong_event_id() -> None:
    envelope = certified(QC)
    envelope.event_id = "00000000-0000-5000-8000-000000000000"
    found = refused(GATE.check(encode(seal(envelope, b"", QC)), RELEASE))
    assert found.reasons == ("event_id",)


def test_content_changed_after_signing() -> None:
    envelope = certified(QC)
    envelope.coi = "CHA123425000018"
    found = refused(GATE.check(encode(envelope), RELEASE))
    assert found.reasons == ("hash",)
    assert (found.coi, found.claimed_site) == ("CHA123425000018", "QC-1")


def test_a_forged_record_signed_with_a_random_key() -> None:
    forger = SiteSigningKey.generate("QC-1")
    found = refused(GATE.check(encode(certified(forger)), RELEASE))
    assert found.reasons == ("signature",)
    assert "unknown signing key" in found.detail
    assert (found.coi, found.claimed_site) == (COI, "QC-1")


def test_a_rehashed_record_with_a_copied_signature() -> None:
    envelope = certified(QC)
    envelope.payload = release.FinallyCertified(coi=COI, batch_id="b-2").SerializeToString()
    envelope.hash = envelope_hash(envelope)
    assert refused(GATE.check(encode(envelope), RELEASE)).reasons == ("signature",)


def test_a_record_signed_by_another_site_than_its_author() -> None:
    envelope = certified(QC)
    envelope.site_id = "HOSP-A"  # claims the hospital, signed with the QC lab's key
    envelope.hash = envelope_hash(envelope)
    envelope.signature = QC.sign(envelope.hash)
    found = refused(GATE.check(encode(envelope), RELEASE))
    assert found.reasons[0] == "signer_site"


def test_a_real_site_without_the_qc_role_cannot_release() -> None:
    found = refused(GATE.check(encode(certified(HOSPITAL)), RELEASE))
    assert found.reasons == ("authorship",)
    assert "may not author release events (needs: qc)" in found.detail
    assert found.claimed_site == "HOSP-A"


def test_a_release_decision_put_on_the_intake_topic_is_not_one() -> None:
    found = refused(GATE.check(encode(certified(HOSPITAL)), INTAKE))
    assert found.reasons == ("event_type",)


def test_every_failing_check_is_named() -> None:
    envelope = certified(HOSPITAL)
    envelope.event_id = "x"
    found = refused(GATE.check(encode(envelope), INTAKE))
    assert found.reasons == ("event_id", "hash", "event_type")
    assert found.reason == "event_id,hash,event_type"


def test_a_stream_keeps_the_author_site_of_its_first_envelope() -> None:
    second = certified(QC, version=2)
    raw = encode(second)
    assert EnvelopeGate.check_stream_author(second, raw, RELEASE, None) is None
    assert EnvelopeGate.check_stream_author(second, raw, RELEASE, "QC-1") is None
    found = EnvelopeGate.check_stream_author(second, raw, RELEASE, "QC-2")
    assert found is not None
    assert found.reasons == ("stream_author",)
    assert "stream authored by site 'QC-2', this envelope by 'QC-1'" in found.detail
    assert (found.raw, found.coi, found.claimed_site) == (raw, COI, "QC-1")


def test_a_gate_on_a_ring_file_sees_the_fixed_ring(tmp_path: Path) -> None:
    path = tmp_path / "signing-keys.json"
    path.write_text(KeyRing().to_json())
    gate = EnvelopeGate(KeyRingFile(path, recheck_s=0.0))
    raw = encode(certified(QC))
    assert refused(gate.check(raw, RELEASE)).reasons == ("signature", "authorship")
    path.write_text(ring().to_json())
    assert gate.check(raw, RELEASE) == certified(QC)


def test_a_malformed_signature_is_a_reason_not_a_crash() -> None:
    envelope = certified(QC)
    envelope.signature = b"short"
    assert refused(GATE.check(encode(envelope), RELEASE)).reasons == ("signature",)


def test_the_audit_chain_verifier_runs_the_same_checks_when_given_the_policy() -> None:
    first, by_hospital = certified(QC), certified(HOSPITAL, version=2)
    by_hospital = seal(by_hospital, first.hash, HOSPITAL)
    audit = ChainVerifier(ring(), AUTHORSHIP)
    assert audit.feed(first, RELEASE) == []
    assert [b.check for b in audit.feed(by_hospital, RELEASE)] == ["authorship", "stream_author"]
    plain = ChainVerifier(ring())
    assert plain.feed(first, RELEASE) == plain.feed(by_hospital, RELEASE) == []
