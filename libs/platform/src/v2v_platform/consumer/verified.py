"""Applying only verified facts: one batch in the consumer's open transaction.

The gate has already checked each polled record (`Delivered` or `Untrusted`). Here, with the
ledger of the same transaction:
1. released quarantine rows are verified again with the gate and go first;
2. each envelope must be by its stream's author site (pinned by the first one taken);
3. what is trusted is applied once (`apply_once`), the new stream authors are pinned;
4. what is not is quarantined (once per location); released rows become applied (or
   superseded, when their stream was already applied at or past their version), or are put
   back with the reasons they fail now.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from v2v.events.v1.envelope_pb2 import Envelope
from v2v_platform.consumer.apply import Apply, ApplyStats, Delivered, apply_once
from v2v_platform.consumer.ledger import GuardedLedger
from v2v_platform.consumer.quarantine import APPLIED, SUPERSEDED, QuarantinedRecord
from v2v_platform.envelope.codec import encode
from v2v_platform.envelope.trust import EnvelopeGate, Untrusted

Checked = Delivered | Untrusted


def apply_verified(
    checked: Sequence[Checked],
    ledger: GuardedLedger,
    unit: Any,
    apply: Apply,
    gate: EnvelopeGate,
    now: datetime,
) -> ApplyStats:
    """Apply the trusted records of `checked` (after the released ones), quarantine the rest."""
    quarantine = ledger.quarantine
    released = quarantine.released()
    again = [_recheck(gate, row) for row in released]
    candidates = [*again, *checked]
    trusted, refused = _by_stream_author(candidates, ledger)
    was_released = {row.location for row in released}
    outcomes = _released_outcomes([d for d, _ in trusted if d.location in was_released], ledger)
    stats = apply_once([d for d, _ in trusted], ledger, unit, apply)
    ledger.pin_authors({a: s for _, (a, s) in trusted if s})
    for delivered, status in outcomes:
        quarantine.settle(delivered.location, status, now)
        if status == APPLIED:
            stats.released += 1
        else:
            stats.quarantine_details.append(
                f"released record at {delivered.location} not applied: its stream"
                f" {delivered.envelope.aggregate_id} was already applied at or past version"
                f" {delivered.envelope.aggregate_version}"
            )
    for record in refused:
        if record.location in was_released:
            quarantine.put_back(record)
            stats.quarantine_details.append(f"released record still untrusted: {record}")
        elif quarantine.put(record, now):
            stats.quarantined += 1
            stats.quarantine_details.append(str(record))
            stats.newly_quarantined.append(record)
    return stats


def _released_outcomes(
    released: Sequence[Delivered], ledger: GuardedLedger
) -> list[tuple[Delivered, str]]:
    """Which released records `apply_once` applies (they go first, in this order) and which it
    finds already applied (at or below their stream's last version)."""
    last = ledger.last_versions({d.envelope.aggregate_id for d in released})
    outcomes = []
    for delivered in released:
        stream, version = delivered.envelope.aggregate_id, delivered.envelope.aggregate_version
        if version <= last.get(stream, 0):
            outcomes.append((delivered, SUPERSEDED))
        else:
            last[stream] = version
            outcomes.append((delivered, APPLIED))
    return outcomes


def _recheck(gate: EnvelopeGate, row: QuarantinedRecord) -> Checked:
    found = gate.check(row.raw, row.location)
    if isinstance(found, Untrusted):
        return found
    return Delivered(found, row.location, [], row.raw)


def _by_stream_author(
    candidates: Iterable[Checked], ledger: GuardedLedger
) -> tuple[list[tuple[Delivered, tuple[str, str]]], list[Untrusted]]:
    """Trusted deliveries (with the (stream, site) to pin, site empty when already pinned) and
    every untrusted record, in order."""
    candidates = list(candidates)
    streams = {c.envelope.aggregate_id for c in candidates if isinstance(c, Delivered)}
    pinned: dict[str, str] = ledger.authors(streams)
    trusted: list[tuple[Delivered, tuple[str, str]]] = []
    refused: list[Untrusted] = []
    for candidate in candidates:
        if isinstance(candidate, Untrusted):
            refused.append(candidate)
            continue
        envelope: Envelope = candidate.envelope
        stream = envelope.aggregate_id
        known = pinned.get(stream)
        wrong = EnvelopeGate.check_stream_author(envelope, b"", candidate.location, known)
        if wrong is not None:
            refused.append(_with_raw(wrong, candidate))
            continue
        pinned[stream] = envelope.site_id
        trusted.append((candidate, (stream, "" if known else envelope.site_id)))
    return trusted, refused


def _with_raw(record: Untrusted, delivered: Delivered) -> Untrusted:
    return replace(record, raw=delivered.raw or encode(delivered.envelope))
