"""Alerts that relate facts of different contexts, judged on the times the facts carry (never
on arrival order): infusion or receipt without a valid release, windows at the bedside,
unacknowledged post-release failures, and integrity breaks of the chain's streams.

Windows are judged by the deadlines the events carry, never by a constant of the projection's
own: each site applies its own protocol rules and records what it applied (see
`v2v_platform.protocol_rules`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from v2v_projection.chain.alert_kinds import (
    INFUSION_WITHOUT_RELEASE,
    INTEGRITY_BREAK,
    RECEIPT_WITHOUT_RELEASE,
    STABILITY_WINDOW_BREACH,
    UNACKNOWLEDGED_POST_RELEASE_FAILURE,
)
from v2v_projection.chain.builder import Administration, ChainBuilder, Decision
from v2v_projection.chain.times import hours, iso

RELEASING = ("provisional", "final", "oos-accepted")


class ChainBreak(NamedTuple):
    """An integrity break of one of the chain's streams, found by the fold: a version whose
    prev_hash is not its predecessor's hash, or a missing version (later ones parked)."""

    detail: str
    event_id: str
    recorded_ns: int


def batch_of(chain: ChainBuilder, din: str) -> str:
    unit = chain.units.get(din)
    if unit is not None and unit.kind == "product" and unit.batch_id:
        return unit.batch_id
    for batch_id, release in sorted(chain.releases.items()):
        if din in release.product_dins:
            return batch_id
    return unit.batch_id if unit is not None else ""


def releases_in_force(chain: ChainBuilder, din: str, at_ns: int) -> list[Decision]:
    """The releasing decisions of the unit's batch up to `at_ns` since its last rejection."""
    release = chain.releases.get(batch_of(chain, din))
    if release is None:
        return []
    in_force: list[Decision] = []
    for decision in sorted(release.decisions, key=lambda d: (d.at_ns, d.event_id)):
        if decision.at_ns > at_ns:
            break
        if decision.kind == "rejected":
            in_force = []
        elif decision.kind in RELEASING:
            in_force.append(decision)
    return in_force


def release_alerts(chain: ChainBuilder) -> None:
    for receipt in chain.receipts:
        if not releases_in_force(chain, receipt.din, receipt.at_ns):
            detail = f"unit {receipt.din} received at the treating site before any release"
            chain.alert(RECEIPT_WITHOUT_RELEASE, receipt.at_ns, detail, receipt.event_id)
    for infused in chain.administrations:
        in_force = releases_in_force(chain, infused.din, infused.at_ns)
        if not in_force:
            detail = f"unit {infused.din} infused {iso(infused.at_ns)} without a valid release"
            chain.alert(INFUSION_WITHOUT_RELEASE, infused.at_ns, detail, infused.event_id)
        else:
            bedside_windows(chain, infused, in_force[0])
    for release in chain.releases.values():
        for failure_id, (test, at_ns, event_id) in sorted(release.failures.items()):
            if failure_id not in chain.acknowledged:
                detail = f"post-release {test} failure of batch {release.batch_id} not acknowledged"
                chain.alert(UNACKNOWLEDGED_POST_RELEASE_FAILURE, at_ns, detail, event_id)


def bedside_windows(chain: ChainBuilder, infused: Administration, released: Decision) -> None:
    """One `stability-window-breach` when the unit was infused after a deadline its events
    recorded: the thaw's `infuse_by` (post-thaw window) or the `infuse_by` verified at the
    bedside (release + the fresh product window the treating site applied, or the thaw
    deadline); the earliest deadline missed is named.

    An infusion with no recorded deadline (a fresh unit never verified at the bedside with
    one) gets no window alert: nothing says which window applied, and the projection applies
    none of its own."""
    din, at_ns = infused.din, infused.at_ns
    missed = [
        (deadline, what)
        for deadline, what in (
            (chain.thaw_deadlines.get(din), "its thaw deadline"),
            (chain.verified_deadlines.get(din), "the deadline verified at the bedside"),
        )
        if deadline is not None and at_ns > deadline
    ]
    if not missed:
        return
    deadline, what = min(missed, key=lambda found: found[0])
    waited = hours(released.at_ns, at_ns)
    detail = (
        f"unit {din} infused {iso(at_ns)} ({waited} h after release), after {what} {iso(deadline)}"
    )
    chain.alert(STABILITY_WINDOW_BREACH, at_ns, detail, infused.event_id)


def integrity_alerts(chain: ChainBuilder, breaks: Iterable[ChainBreak]) -> None:
    for found in breaks:
        chain.alert(INTEGRITY_BREAK, found.recorded_ns, found.detail, found.event_id)
