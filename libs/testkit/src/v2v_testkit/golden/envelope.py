"""The envelope's golden vectors: two chained, signed envelopes of one stream, and the key
ring that verifies them (contracts/golden/envelope/v1/)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from google.protobuf.struct_pb2 import Struct

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope, encode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_testkit.contracts import golden_dir
from v2v_testkit.golden.vectors import to_json

GOLDEN_DIR = golden_dir("envelope")
SITE = "HOSP-A"
SEED = bytes(range(32))


def golden_signer() -> SiteSigningKey:
    return SiteSigningKey.from_seed(SITE, SEED)


def golden_key_ring() -> KeyRing:
    ring = KeyRing()
    ring.add(SITE, golden_signer().public_key)
    return ring


def golden_payload() -> Struct:
    payload = Struct()
    payload.update({"volume_ml": 212.5, "collection_site": SITE, "units": ["G123498654321"]})
    return payload


def golden_chain() -> list[Envelope]:
    """Two envelopes of one aggregate stream: version 1 and version 2 chained to it."""
    signer = golden_signer()
    envelopes: list[Envelope] = []
    prev_hash = b""
    for version in (1, 2):
        content = EnvelopeContent(
            coi="CHA123425000017",
            aggregate_type="Collection",
            aggregate_id="0b1f6a2e-54a5-4a4f-8f0e-1d2c3b4a5968",
            aggregate_version=version,
            payload=golden_payload(),
            schema_version=1,
            recorded_at=datetime(2025, 3, 14, 9, 26, 53, 589793, tzinfo=UTC),
            site_id=SITE,
            actor=Actor("u-1042", "Dr. Ada Example", "collection"),
            reason="" if version == 1 else "volume corrected after re-weighing",
            signature_meaning="" if version == 1 else "authorship",
            occurred_at=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
        )
        envelope = build_envelope(content, prev_hash, signer)
        envelopes.append(envelope)
        prev_hash = envelope.hash
    return envelopes


def golden_files(version: int) -> tuple[Path, Path]:
    stem = GOLDEN_DIR / f"envelope-v{version}"
    return stem.with_suffix(".bin"), stem.with_suffix(".json")


def write() -> list[Path]:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for envelope in golden_chain():
        binary, text = golden_files(envelope.aggregate_version)
        binary.write_bytes(encode(envelope))
        text.write_text(to_json(envelope))
        written.append(binary)
    (GOLDEN_DIR / "signing-keys.json").write_text(golden_key_ring().to_json() + "\n")
    return written
