"""Golden vectors: fixed inputs that producer and consumer tests both use.

The envelope vector is here: `python -m v2v_platform.testing.golden --write` regenerates
contracts/golden/envelope/v1/ (only when the contract changes on purpose; the diff is the
review). Each service's `adapters/golden.py` keeps only its example events and builds its
payload vectors with `payloads_by_name`; `vectors_main` is its `--write` (`write_vectors`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.envelope.codec import Actor, EnvelopeContent, build_envelope, encode
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey

GOLDEN_DIR = Path(__file__).resolve().parents[5] / "contracts" / "golden" / "envelope" / "v1"
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


def to_json(message: Message) -> str:
    """A vector's JSON file: sorted keys, two-space indent, a final newline."""
    return json_format.MessageToJson(message, sort_keys=True, indent=2) + "\n"


def to_bytes(message: Message) -> bytes:
    """A vector's binary file: the deterministic protobuf encoding."""
    return message.SerializeToString(deterministic=True)


def write() -> None:
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    for envelope in golden_chain():
        binary, text = golden_files(envelope.aggregate_version)
        binary.write_bytes(encode(envelope))
        text.write_text(to_json(envelope))
        print(f"wrote {binary.name} and {text.name}")
    (GOLDEN_DIR / "signing-keys.json").write_text(golden_key_ring().to_json() + "\n")


def payloads_by_name(
    events: Iterable[object],
    mappers: Mapping[type, Callable[[Any], Message]],
    *,
    first_of_each: bool = False,
) -> dict[str, Message]:
    """Message name -> payload the production `mappers` build from the golden events: of the
    events mapped to one message type, the last one (the first with `first_of_each`)."""
    payloads: dict[str, Message] = {}
    for event in events:
        payload = mappers[type(event)](event)
        name = payload.DESCRIPTOR.name
        if not first_of_each or name not in payloads:
            payloads[name] = payload
    return payloads


def vector_files(directory: Path, name: str) -> tuple[Path, Path]:
    """The binary and JSON files of message `name`'s vector."""
    return directory / f"{name}.bin", directory / f"{name}.json"


def write_vectors(directory: Path, payloads: Mapping[str, Message]) -> list[Path]:
    """Rewrite the vectors; a vector of a message no longer published is removed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in sorted(directory.glob("*.bin")) + sorted(directory.glob("*.json")):
        if stale.stem not in payloads:
            stale.unlink()
    written = []
    for name, payload in payloads.items():
        binary, text = vector_files(directory, name)
        binary.write_bytes(to_bytes(payload))
        text.write_text(to_json(payload))
        written.append(binary)
    return written


def vectors_main(
    description: str | None, directory: Path, payloads: Callable[[], Mapping[str, Message]]
) -> None:
    """A service golden module's `python -m ... --write`: rewrites the vectors in `directory`
    (`write_vectors`); refuses to run without `--write`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    args = parser.parse_args()
    if not args.write:
        parser.error("nothing to do: pass --write to rewrite the golden files on purpose")
    for path in write_vectors(directory, payloads()):
        print(f"wrote {path} (+ .json)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite the golden files")
    if parser.parse_args().write:
        write()
