"""Idempotent application by (aggregate id, version), on the in-memory ledger."""

from __future__ import annotations

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.consumer import Delivered, InMemoryLedger, apply_once
from v2v_platform.envelope import Location


def _delivered(aggregate: str, version: int) -> Delivered:
    envelope = Envelope(aggregate_id=aggregate, aggregate_version=version)
    return Delivered(envelope, Location("t", 0, version), [])


class Tally:
    def __init__(self) -> None:
        self.applied: list[tuple[str, int]] = []

    def __call__(self, unit: object, delivered: Delivered) -> None:
        self.applied.append((delivered.envelope.aggregate_id, delivered.envelope.aggregate_version))


def test_each_version_is_applied_once_across_redeliveries() -> None:
    ledger, tally = InMemoryLedger(), Tally()
    first = [_delivered("a", 1), _delivered("a", 2), _delivered("b", 1)]
    stats = apply_once(first, ledger, None, tally)
    assert (stats.applied, stats.duplicates) == (3, 0)
    redelivered = [_delivered("a", 2), _delivered("b", 1), _delivered("a", 3), _delivered("a", 3)]
    stats = apply_once(redelivered, ledger, None, tally)
    assert (stats.applied, stats.duplicates) == (1, 3)
    assert tally.applied == [("a", 1), ("a", 2), ("b", 1), ("a", 3)]
    assert ledger.versions == {"a": 3, "b": 1}


def test_a_version_gap_is_applied_and_reported() -> None:
    ledger, tally = InMemoryLedger(), Tally()
    stats = apply_once([_delivered("a", 1), _delivered("a", 3)], ledger, None, tally)
    assert (stats.applied, stats.gaps) == (2, 1)
    assert "a: v1 -> v3" in stats.gap_details[0]
