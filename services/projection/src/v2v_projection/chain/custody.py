"""Custody intervals per unit from the chain's custody moves, and the custody alerts.

Moves are replayed in time order (ties by event id): a claim opens an interval unless the
claimant already holds the unit; a transfer closes the giver's interval and opens the
receiver's; an end (consumed by a batch, infused) closes every open interval. Then each unit's
intervals are swept: overlapping intervals are double custody, a hole between intervals or a
unit left without any custodian before its end is a custody gap (invariant I3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from v2v_projection.chain.alert_kinds import CUSTODY_GAP, DOUBLE_CUSTODY
from v2v_projection.chain.builder import ChainBuilder, CustodyMove
from v2v_projection.chain.times import iso

SITE_PREFIX = "site:"


@dataclass(slots=True)
class Interval:
    custodian: str
    site_id: str
    from_ns: int
    event_id: str
    to_ns: int | None = None


@dataclass(slots=True)
class UnitCustody:
    """A unit's intervals (by start once replayed) and those still open."""

    intervals: list[Interval] = field(default_factory=list)
    holding: list[Interval] = field(default_factory=list)
    ended_ns: int | None = None

    def open(self) -> list[Interval]:
        return self.holding


DEPARTMENT_SEPARATOR = "/"


def site_of(party: str, move: CustodyMove) -> str:
    """The site of a `site:<ID>` or `site:<ID>/<department>` party; a courier's: the move's."""
    if not party.startswith(SITE_PREFIX):
        return move.site_id
    return party[len(SITE_PREFIX) :].split(DEPARTMENT_SEPARATOR, 1)[0]


def replay(moves: list[CustodyMove]) -> dict[str, UnitCustody]:
    units: dict[str, UnitCustody] = {}
    for move in sorted(moves, key=lambda m: (m.at_ns, m.event_id)):
        for din in move.dins:
            custody = units.setdefault(din, UnitCustody())
            if move.op == "end":
                close(custody, move.at_ns, None)
                custody.ended_ns = move.at_ns
                continue
            if move.op == "transfer":
                close(custody, move.at_ns, move.from_party)
            if move.to_party:
                claim(custody, move, move.to_party)
    for custody in units.values():
        custody.intervals.sort(key=lambda i: (i.from_ns, i.event_id))
    return units


def close(custody: UnitCustody, at_ns: int, party: str | None) -> None:
    still: list[Interval] = []
    for interval in custody.holding:
        if party is None or interval.custodian == party:
            interval.to_ns = max(at_ns, interval.from_ns)
        else:
            still.append(interval)
    custody.holding = still


def claim(custody: UnitCustody, move: CustodyMove, party: str) -> None:
    for interval in custody.holding:  # a site's claim holds while one of its departments does
        if interval.custodian == party or interval.custodian.startswith(
            party + DEPARTMENT_SEPARATOR
        ):
            return
    interval = Interval(party, site_of(party, move), move.at_ns, move.event_id)
    custody.intervals.append(interval)
    custody.holding.append(interval)


def custody_alerts(chain: ChainBuilder, units: dict[str, UnitCustody]) -> None:
    for din, custody in sorted(units.items()):
        intervals = custody.intervals
        holding: list[Interval] = []
        latest_end: int | None = None
        for interval in intervals:
            start = interval.from_ns
            holding = [h for h in holding if h.to_ns is None or h.to_ns > start]
            if holding:
                others = ", ".join(sorted({h.custodian for h in holding}))
                detail = f"unit {din} taken by {interval.custodian} while held by {others}"
                chain.alert(DOUBLE_CUSTODY, start, detail, interval.event_id)
            elif latest_end is not None and start > latest_end:
                detail = f"unit {din} had no custodian from {iso(latest_end)} to {iso(start)}"
                chain.alert(CUSTODY_GAP, latest_end, detail, interval.event_id)
            holding.append(interval)
            if interval.to_ns is not None:
                latest_end = max(latest_end or interval.to_ns, interval.to_ns)
        if intervals and custody.ended_ns is None and not custody.open():
            detail = f"unit {din} has had no custodian since {iso(latest_end)}"
            chain.alert(CUSTODY_GAP, latest_end or 0, detail, intervals[-1].event_id)


def custody_view(units: dict[str, UnitCustody], din: str) -> list[dict[str, Any]]:
    custody = units.get(din)
    if custody is None:
        return []
    intervals = custody.intervals
    return [
        {
            "custodian": interval.custodian,
            "site_id": interval.site_id,
            "from": iso(interval.from_ns),
            "to": iso(interval.to_ns),
        }
        for interval in intervals
    ]
