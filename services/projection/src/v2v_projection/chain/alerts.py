"""Every alert kind the projection raises: what it means and where it is decided.

identity-mismatch
    Any scan was refused and recorded (label at intake, receipt at the GMP site, custody
    handoff, bedside): invariant I2. `identity_mismatch` below, called by the `on_<context>`
    handler of each mismatch event.
double-custody, custody-gap
    Two holders at once, or nobody between a handoff and the next claim (I3): `custody.py`.
shipment-exception, temperature-excursion
    A shipment recorded lost, damaged or delayed; readings outside the condition's range (I5):
    `on_logistics.py`.
stability-window-breach
    A window recorded by the site that applied it was missed: a shipment's, a batch start's,
    a thaw deadline, the bedside's `infuse_by` (I5): `on_logistics.py`, `on_manufacturing.py`,
    `checks.py`.
receipt-without-release, infusion-without-release
    A unit reached the ward or the patient without a valid release (I4): `checks.py`.
unacknowledged-post-release-failure
    A test failed after release and the treating physician has not acknowledged it:
    `checks.py`.
integrity-break
    A stream's hash chain is broken or has a gap: `checks.py`.
untrusted-record (critical)
    A record naming this COI failed verification (not an envelope, hash, signature, signer,
    event type of its topic, authorship, one author per stream) and was quarantined, never
    folded: someone wrote on a topic what the consortium's keys do not vouch for. The detail
    names the record's location, the reasons and the author site it claims. Raised from the
    projection's quarantine (`ChainFold.distrust`, reloaded with the store), `untrusted_alerts`
    below. A refused record whose COI cannot be read is in the quarantine only
    (`v2v quarantine list --consumer projection`, `ChainProjection.quarantined_records`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from v2v_projection.chain.builder import ChainBuilder

IDENTITY_MISMATCH = "identity-mismatch"
UNTRUSTED_RECORD = "untrusted-record"


def identity_mismatch(chain: ChainBuilder, at_ns: int, detail: str, event_id: str) -> None:
    """A refused scan, wherever it happened: the chain it names is at risk (I2)."""
    chain.alert(IDENTITY_MISMATCH, at_ns, detail, event_id)


class UntrustedMark(NamedTuple):
    """A quarantined record naming a chain's COI: when it was quarantined, what it is."""

    location: str
    at_ns: int
    detail: str
    event_id: str  # the event id it claims ("" when it is not an envelope)


def untrusted_alerts(chain: ChainBuilder, marks: Iterable[UntrustedMark]) -> None:
    """One critical alert per quarantined record naming the chain: nothing it claims is
    folded, but the chain's readers must know someone tried."""
    for mark in marks:
        chain.alert(UNTRUSTED_RECORD, mark.at_ns, mark.detail, mark.event_id)
