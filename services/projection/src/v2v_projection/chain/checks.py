"""Alerts that relate facts of different contexts, judged on the times the facts carry (never
on arrival order): infusion or receipt without a valid release, windows at the bedside,
unacknowledged post-release failures, and integrity breaks of the chain's streams."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from v2v_projection.chain.builder import Administration, ChainBuilder, Decision
from v2v_projection.chain.times import NS_PER_HOUR, hours, iso

RELEASING = ("provisional", "final", "oos-accepted")
FRESH_PRODUCT_WINDOW_NS = 72 * NS_PER_HOUR


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
            chain.alert("receipt-without-release", receipt.at_ns, detail, receipt.event_id)
    for infused in chain.administrations:
        in_force = releases_in_force(chain, infused.din, infused.at_ns)
        if not in_force:
            detail = f"unit {infused.din} infused {iso(infused.at_ns)} without a valid release"
            chain.alert("infusion-without-release", infused.at_ns, detail, infused.event_id)
        else:
            bedside_windows(chain, infused, in_force[0])
    for release in chain.releases.values():
        for failure_id, (test, at_ns, event_id) in sorted(release.failures.items()):
            if failure_id not in chain.acknowledged:
                detail = f"post-release {test} failure of batch {release.batch_id} not acknowledged"
                chain.alert("unacknowledged-post-release-failure", at_ns, detail, event_id)


def bedside_windows(chain: ChainBuilder, infused: Administration, released: Decision) -> None:
    unit = chain.units.get(infused.din)
    thaw = chain.thaw_deadlines.get(infused.din)
    if thaw is not None and thaw[1] and infused.at_ns > thaw[1]:
        detail = (
            f"unit {infused.din} infused {iso(infused.at_ns)},"
            f" after its thaw deadline {iso(thaw[1])}"
        )
        chain.alert("stability-window-breach", infused.at_ns, detail, infused.event_id)
    fresh = unit is not None and unit.condition not in ("", "cryo")
    if fresh and infused.at_ns - released.at_ns > FRESH_PRODUCT_WINDOW_NS:
        waited = hours(released.at_ns, infused.at_ns)
        detail = f"fresh unit {infused.din} infused {waited} h after release (window 72 h)"
        chain.alert("stability-window-breach", infused.at_ns, detail, infused.event_id)


def integrity_alerts(chain: ChainBuilder, breaks: Iterable[ChainBreak]) -> None:
    for found in breaks:
        chain.alert("integrity-break", found.recorded_ns, found.detail, found.event_id)
