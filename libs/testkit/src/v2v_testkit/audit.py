"""Test support for the audit tools (`v2v audit`) and the projection: a synthetic history laid
out as Kafka would hold it (partitions, offsets) and as a history file, a key-ring-only PKI
folder, and a PKI's ring extended with a synthetic history's keys."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from v2v_platform.auth.tls import KEY_RING_FILE
from v2v_platform.envelope.codec import decode
from v2v_platform.envelope.keys import KeyRing
from v2v_projection.audit.sources import partition_for
from v2v_projection.history_file import Extent, HistoryHeader, HistoryRecord

GENERATED_AT = "2025-01-01T00:00:00+00:00"


def partitioned(
    by_topic: Mapping[str, Sequence[bytes]], partitions: int = 3
) -> tuple[HistoryHeader, list[HistoryRecord]]:
    """Each topic's envelopes spread over `partitions` by COI key (as the relay's producer
    does), offsets from 0 in publication order; extents are exactly the records."""
    extents: list[Extent] = []
    records: list[HistoryRecord] = []
    for topic in sorted(by_topic):
        lanes: list[list[bytes]] = [[] for _ in range(partitions)]
        for value in by_topic[topic]:
            lanes[partition_for(decode(value).coi, partitions)].append(value)
        for partition, values in enumerate(lanes):
            extents.append(Extent(topic, partition, 0, len(values)))
            records += [HistoryRecord(topic, partition, o, v) for o, v in enumerate(values)]
    return HistoryHeader(GENERATED_AT, "generated", extents), records


def write_key_ring(directory: Path, keys: KeyRing) -> Path:
    """A PKI-directory-shaped folder holding only the key ring (what `verify --keys` reads)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / KEY_RING_FILE).write_text(keys.to_json() + "\n")
    return directory


def trust_keys(pki_dir: Path, keys: KeyRing) -> Path:
    """Add `keys` (e.g. a generated history's, with their sites' roles) to the key ring of the
    PKI in `pki_dir`, so its consumers verify that history; the PKI's own keys stay. A site in
    both must hold the same roles in both."""
    path = pki_dir / KEY_RING_FILE
    entries = {entry["key_id"]: entry for entry in json.loads(path.read_text())["keys"]}
    for entry in json.loads(keys.to_json())["keys"]:
        entries.setdefault(entry["key_id"], entry)
    merged = KeyRing.from_json(json.dumps({"keys": list(entries.values())}))
    temporary = path.with_suffix(".tmp")
    temporary.write_text(merged.to_json() + "\n")
    temporary.replace(path)
    return path
