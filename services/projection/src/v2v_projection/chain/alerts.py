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
"""

from __future__ import annotations

from v2v_projection.chain.builder import ChainBuilder

IDENTITY_MISMATCH = "identity-mismatch"


def identity_mismatch(chain: ChainBuilder, at_ns: int, detail: str, event_id: str) -> None:
    """A refused scan, wherever it happened: the chain it names is at risk (I2)."""
    chain.alert(IDENTITY_MISMATCH, at_ns, detail, event_id)
