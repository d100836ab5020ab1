"""The alerts that are not decided inside one handler: refused scans (I2), records the gate
quarantined, double infusions, facts by unrelated sites, and one DIN bound to two COIs.

Every kind, its severity and its trigger are catalogued in `alert_kinds.py` (published as
docs/alerts.md); the checks that relate facts of different contexts are in `checks.py`,
custody's in `custody.py`, windows and shipments in the `on_<context>` handlers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from v2v_projection.chain.alert_kinds import (
    DOUBLE_INFUSION,
    IDENTITY_CONFLICT,
    UNRELATED_AUTHOR,
    UNTRUSTED_RECORD,
    bedside_refusal,
    scan_refusal,
)
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import Administration, ChainBuilder
from v2v_projection.chain.identity import Binding, Conflict, in_binding_order
from v2v_projection.chain.times import iso

INFUSION_EVENTS = "v2v.infusion.events.v1."


def identity_mismatch(
    chain: ChainBuilder, reason_code: str, at_ns: int, detail: str, event_id: str
) -> None:
    """A refused scan, wherever it happened: the chain it names is at risk (I2); an identity
    conflict when the service refused because the unit's DIN is bound to two COIs."""
    chain.alert(scan_refusal(reason_code), at_ns, detail, event_id)


def bedside_refused(
    chain: ChainBuilder, reason_code: str, at_ns: int, detail: str, event_id: str
) -> None:
    """A refused bedside scan, as the alert its reason names (`alert_kinds.BEDSIDE_REFUSALS`):
    a wrong wristband is an identity mismatch, an expired window a window breach, etc."""
    chain.alert(bedside_refusal(reason_code), at_ns, detail, event_id)


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


class CrossChain(NamedTuple):
    """What the fold's DIN indexes know of a chain's DINs beyond the chain (I1): (DIN data,
    COI -> its earliest binding) of each DIN also bound to, or infused under, another COI."""

    bound: Sequence[tuple[str, Conflict]] = ()
    infused: Sequence[tuple[str, Conflict]] = ()


def identity_conflict_alerts(chain: ChainBuilder, crossed: CrossChain) -> None:
    """One critical alert per other COI a DIN of this chain is bound to (`identity-conflict`)
    or infused under (`double-infusion`), at the time of the later of the two facts."""
    for din, conflict in crossed.bound:
        _per_other_coi(chain, IDENTITY_CONFLICT, din, conflict, "bound to")
    for din, conflict in crossed.infused:
        _per_other_coi(chain, DOUBLE_INFUSION, din, conflict, "infused under")


def _per_other_coi(chain: ChainBuilder, kind: str, din: str, conflict: Conflict, how: str) -> None:
    mine = conflict.get(chain.coi)
    if mine is None:
        return
    for coi, other in in_binding_order(conflict):
        if coi == chain.coi:
            continue
        later = max(mine, other, key=Binding.key)
        detail = (
            f"unit {din} is {how} two COIs: {_bound(chain.coi, mine)} and {_bound(coi, other)}"
            " (one DIN, one patient: I1)"
        )
        chain.alert(kind, later.at_ns, detail, later.event_id)


def _bound(coi: str, binding: Binding) -> str:
    return f"{coi} ({binding.din} by {binding.site_id} {iso(binding.at_ns)})"
