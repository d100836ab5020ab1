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
double-infusion (critical)
    The chain's product was infused more than once: a bag administered again (at its
    treating site or anywhere else), or bags of the one COI's product infused at two sites.
    One alert per administration after the first that repeats a bag or adds a site, at its
    time, naming the first: `double_infusion_alerts` below (called by the derivation).
unrelated-author (critical)
    A site recorded a fact about the COI without being related to it (relationships.py), or
    an infusion event came from another site than the chain's treating site: the authorship
    gate checks roles only, so this is where a guessed COI or a bag at the wrong ward shows.
    Such a fact never makes its author a reader of the chain. Raised only once the chain's
    enrolment is known: `unrelated_author_alerts` below.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import Administration, ChainBuilder
from v2v_projection.chain.times import iso

IDENTITY_MISMATCH = "identity-mismatch"
UNTRUSTED_RECORD = "untrusted-record"
DOUBLE_INFUSION = "double-infusion"
UNRELATED_AUTHOR = "unrelated-author"
INFUSION_EVENTS = "v2v.infusion.events.v1."


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


def double_infusion_alerts(chain: ChainBuilder) -> None:
    """Every administration that repeats a bag already infused, or infuses the COI's product
    at another site than the first infusion's (judged in clinical-time order)."""
    first_of: dict[str, Administration] = {}
    first: Administration | None = None
    for given in sorted(chain.administrations, key=lambda a: (a.at_ns, a.event_id)):
        again = first_of.get(given.din)
        if again is not None:
            detail = (
                f"unit {given.din} infused again at {given.site_id} {iso(given.at_ns)};"
                f" it was infused at {again.site_id} {iso(again.at_ns)}"
            )
            chain.alert(DOUBLE_INFUSION, given.at_ns, detail, given.event_id)
        elif first is not None and given.site_id != first.site_id:
            detail = (
                f"unit {given.din} infused at {given.site_id} {iso(given.at_ns)}; this COI's"
                f" product was infused at {first.site_id} {iso(first.at_ns)} (unit {first.din})"
            )
            chain.alert(DOUBLE_INFUSION, given.at_ns, detail, given.event_id)
        first_of.setdefault(given.din, given)
        first = first or given


def unrelated_author_alerts(chain: ChainBuilder, facts: Iterable[Fact]) -> None:
    """One alert per fact by a site the chain does not relate to, and per infusion event by a
    site other than the treating site (`chain.sites` must be derived)."""
    if not chain.enrolments:
        return  # nothing says yet who is related
    strangers = chain.authors - chain.sites
    elsewhere = chain.infusion_authors - {chain.treating_site_id}
    if not strangers and not elsewhere:
        return
    for fact in facts:
        site, event_type = fact.site_id, fact.event_type
        if site in strangers:
            why = "a site this chain does not relate to"
        elif site in elsewhere and event_type.startswith(INFUSION_EVENTS):
            why = f"not the chain's treating site {chain.treating_site_id}"
        else:
            continue
        detail = f"{event_type.rsplit('.', 1)[-1]} recorded by {site}, {why}"
        chain.alert(UNRELATED_AUTHOR, fact.occurred_ns, detail, fact.event_id)
