"""KPIs, as defined in docs/kpis.md: per chain (durations of its journey) and per site and
consortium (medians, p90s and rates).

Every time used is a clinical time (when the thing happened: the times events carry, or the
envelope's `occurred_at`), never `recorded_at`. An interval whose end precedes its start is
not a duration: it is left out of every figure and counted as a data-quality finding
(`excluded_intervals`), so no median or p90 averages in an impossible value.

Patient measures (vein-to-vein, time per stage, second apheresis) count for the chain's
treating site; batch measures (manufacturing success, OOS releases) for the batch's
manufacturing site; everything counts for the consortium.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from v2v_projection.chain.builder import Batch, ChainBuilder
from v2v_projection.chain.checks import RELEASING, batch_of
from v2v_projection.chain.times import hours, iso

VEIN_TO_VEIN = "apheresis_to_infusion_hours"
"""First apheresis collection end -> first infusion (the key predates the definition's name)."""
STAGE_SPANS = (
    "enrolment_to_collection",
    "collection_to_manufacturing",
    "manufacturing",
    "release",
    "release_to_infusion",
)
OOS_DECISIONS = frozenset({"oos-justified", "oos-accepted"})


class Intervals:
    """The chain's intervals in hours; an impossible one (end before start) is a finding."""

    def __init__(self) -> None:
        self.excluded: list[dict[str, Any]] = []

    def hours(self, kpi: str, start_ns: int | None, end_ns: int | None) -> float | None:
        if start_ns is None or end_ns is None:
            return None
        if end_ns < start_ns:
            self.excluded.append({"kpi": kpi, "from": iso(start_ns), "to": iso(end_ns)})
            return None
        return hours(start_ns, end_ns)


def chain_kpis(chain: ChainBuilder) -> dict[str, Any]:
    infused = min(chain.administrations, key=lambda a: (a.at_ns, a.event_id), default=None)
    batch = chain.batches.get(batch_of(chain, infused.din)) if infused else latest_batch(chain)
    first = first_collection(chain)
    harvested = harvested_ns(batch)
    released = first_release_ns(chain, batch)
    infusion_ns = infused.at_ns if infused else None
    started_ns = batch.started_ns if batch else None
    bounds = {
        "enrolment_to_collection": (chain.enrolled_ns, first[0] if first else None),
        "collection_to_manufacturing": (inputs_collected_ns(chain, batch), started_ns),
        "manufacturing": (started_ns, harvested),
        "release": (harvested, released),
        "release_to_infusion": (released, infusion_ns),
    }
    span = Intervals()
    stage_hours = {stage: span.hours(stage, *bounds[stage]) for stage in STAGE_SPANS}
    return {
        VEIN_TO_VEIN: span.hours("vein_to_vein", first[1] if first else None, infusion_ns),
        "stage_hours": stage_hours,
        "infused": infused is not None,
        "collections": len(chain.collections),
        "second_apheresis": len(chain.collections) > 1,
        "enrolling_site_id": chain.enrolling_site_id,
        "batches": [batch_outcome(chain, b) for b in sorted(chain.batches.values(), key=started)],
        "excluded_intervals": span.excluded,
    }


def started(batch: Batch) -> tuple[int, str]:
    return (batch.started_ns, batch.batch_id)


def latest_batch(chain: ChainBuilder) -> Batch | None:
    return max(chain.batches.values(), key=started, default=None)


def harvested_ns(batch: Batch | None) -> int | None:
    return batch.ended_ns if batch is not None and batch.status == "harvested" else None


def first_collection(chain: ChainBuilder) -> tuple[int, int] | None:
    """(start, end) of the chain's first apheresis (earliest start; then earliest end)."""
    return min(chain.collections.values(), default=None)


def inputs_collected_ns(chain: ChainBuilder, batch: Batch | None) -> int | None:
    """End of the collection(s) whose units fed the batch (the last of them); without known
    inputs, the end of the last collection that ended before the batch started."""
    if batch is None:
        return None
    ends = [
        chain.collections[unit.collection_id][1]
        for din in batch.input_dins
        if (unit := chain.units.get(din)) is not None and unit.collection_id in chain.collections
    ]
    if not ends:
        ends = [end for _, end in chain.collections.values() if end <= batch.started_ns]
    return max(ends, default=None)


def first_release_ns(chain: ChainBuilder, batch: Batch | None) -> int | None:
    release = chain.releases.get(batch.batch_id) if batch else None
    times = [d.at_ns for d in release.decisions if d.kind in RELEASING] if release else []
    return min(times, default=None)


def batch_outcome(chain: ChainBuilder, batch: Batch) -> dict[str, Any]:
    release = chain.releases.get(batch.batch_id)
    kinds = {decision.kind for decision in release.decisions} if release else set()
    return {
        "batch_id": batch.batch_id,
        "site_id": batch.site_id,
        "status": batch.status,
        "released": bool(kinds & set(RELEASING)),
        "oos": bool(kinds & OOS_DECISIONS),
    }


def distribution(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median": None, "p90": None}
    ordered = sorted(values)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"n": len(ordered), "median": round(statistics.median(ordered), 2), "p90": p90}


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class Summary:
    chains: int = 0
    infused: int = 0
    second_apheresis: int = 0
    with_collection: int = 0
    apheresis_to_infusion: list[float] = field(default_factory=list)
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGE_SPANS})
    batches: int = 0
    harvested: int = 0
    failed: int = 0
    released: int = 0
    oos: int = 0
    excluded: Counter[str] = field(default_factory=Counter)

    def add_chain(self, kpis: dict[str, Any]) -> None:
        self.chains += 1
        if kpis["collections"]:
            self.with_collection += 1
            self.second_apheresis += kpis["second_apheresis"]
        self.infused += kpis["infused"]
        if kpis[VEIN_TO_VEIN] is not None:
            self.apheresis_to_infusion.append(kpis[VEIN_TO_VEIN])
        for stage, value in kpis["stage_hours"].items():
            if value is not None:
                self.stages[stage].append(value)
        self.excluded.update(finding["kpi"] for finding in kpis["excluded_intervals"])

    def add_batch(self, outcome: dict[str, Any]) -> None:
        self.batches += 1
        self.harvested += outcome["status"] == "harvested"
        self.failed += outcome["status"] == "failed"
        self.released += outcome["released"]
        self.oos += outcome["released"] and outcome["oos"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chains": self.chains,
            "infused": self.infused,
            VEIN_TO_VEIN: distribution(self.apheresis_to_infusion),
            "stage_hours": {stage: distribution(v) for stage, v in self.stages.items()},
            "batches": self.batches,
            "manufacturing_success_rate": rate(self.harvested, self.harvested + self.failed),
            "oos_rate": rate(self.oos, self.released),
            "second_apheresis_rate": rate(self.second_apheresis, self.with_collection),
            "excluded_intervals": dict(sorted(self.excluded.items())),
        }


def summarize(views: Iterable[dict[str, Any]]) -> dict[str, Any]:
    consortium = Summary()
    sites: dict[str, Summary] = {}
    for view in views:
        kpis = view["kpis"]
        patient_site = view["treating_site_id"] or kpis["enrolling_site_id"]
        for summary in (consortium, sites.setdefault(patient_site, Summary())):
            summary.add_chain(kpis)
        for outcome in kpis["batches"]:
            for summary in (consortium, sites.setdefault(outcome["site_id"], Summary())):
                summary.add_batch(outcome)
    return {
        "consortium": consortium.as_dict(),
        "sites": {site: sites[site].as_dict() for site in sorted(sites) if site},
    }
