"""Applying delivered envelopes once each, by (aggregate id, version), with the ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform import telemetry
from v2v_platform.consumer.ledger import Ledger
from v2v_platform.envelope.trust import Untrusted
from v2v_platform.envelope.verify import Location


@dataclass(frozen=True)
class Delivered:
    envelope: Envelope
    location: Location
    headers: Sequence[tuple[str, bytes]]
    raw: bytes = b""


@dataclass
class ApplyStats:
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    quarantined: int = 0
    released: int = 0
    gap_details: list[str] = field(default_factory=list)
    quarantine_details: list[str] = field(default_factory=list)
    newly_quarantined: list[Untrusted] = field(default_factory=list)

    def add(self, other: ApplyStats) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.gaps += other.gaps
        self.quarantined += other.quarantined
        self.released += other.released
        self.gap_details.extend(other.gap_details)


class Apply(Protocol):
    def __call__(self, unit_of_work: Any, delivered: Delivered) -> None: ...


def apply_once(batch: Sequence[Delivered], ledger: Ledger, unit: Any, apply: Apply) -> ApplyStats:
    """Apply each envelope not yet applied, in order; record the new versions."""
    stats = ApplyStats()
    ids = {d.envelope.aggregate_id for d in batch}
    last = ledger.last_versions(ids)
    changed: dict[str, int] = {}
    for delivered in batch:
        envelope = delivered.envelope
        seen = last.get(envelope.aggregate_id, 0)
        if envelope.aggregate_version <= seen:
            stats.duplicates += 1
            continue
        if envelope.aggregate_version != seen + 1:
            stats.gaps += 1
            version = envelope.aggregate_version
            where = delivered.location
            stats.gap_details.append(f"{envelope.aggregate_id}: v{seen} -> v{version} at {where}")
        with telemetry.consumer_span(delivered.location.topic, delivered.headers):
            apply(unit, delivered)
        last[envelope.aggregate_id] = changed[envelope.aggregate_id] = envelope.aggregate_version
        stats.applied += 1
    ledger.record(changed)
    return stats
