"""KPIs: per chain (durations of its journey) and per site / consortium (aggregates).

Patient measures (apheresis-to-infusion, time per stage, second apheresis) count for the
chain's treating site; batch measures (manufacturing success, OOS releases) for the batch's
manufacturing site; everything counts for the consortium.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from v2v_projection.chain.builder import Batch, ChainBuilder
from v2v_projection.chain.checks import RELEASING, batch_of
from v2v_projection.chain.times import hours

STAGE_SPANS = (
    "enrolment_to_collection",
    "collection_to_manufacturing",
    "manufacturing",
    "release",
    "release_to_infusion",
)


def chain_kpis(chain: ChainBuilder) -> dict[str, Any]:
    infused = min(chain.administrations, key=lambda a: (a.at_ns, a.event_id), default=None)
    batch = chain.batches.get(batch_of(chain, infused.din)) if infused else latest_batch(chain)
    collected = collection_end(chain, batch)
    released = first_release_ns(chain, batch)
    infusion_ns = infused.at_ns if infused else None
    starts = [started for started, _ in chain.collections.values()]
    stage_hours = {
        "enrolment_to_collection": hours(chain.enrolled_ns, min(starts, default=None)),
        "collection_to_manufacturing": hours(collected, batch.started_ns if batch else None),
        "manufacturing": hours(batch.started_ns, batch.ended_ns) if batch else None,
        "release": hours(harvested_ns(batch), released),
        "release_to_infusion": hours(released, infusion_ns),
    }
    return {
        "apheresis_to_infusion_hours": hours(collected, infusion_ns),
        "stage_hours": stage_hours,
        "collections": len(chain.collections),
        "second_apheresis": len(chain.collections) > 1,
        "enrolling_site_id": chain.enrolling_site_id,
        "batches": [batch_outcome(chain, b) for b in sorted(chain.batches.values(), key=started)],
    }


def started(batch: Batch) -> tuple[int, str]:
    return (batch.started_ns, batch.batch_id)


def latest_batch(chain: ChainBuilder) -> Batch | None:
    return max(chain.batches.values(), key=started, default=None)


def harvested_ns(batch: Batch | None) -> int | None:
    return batch.ended_ns if batch is not None and batch.status == "harvested" else None


def collection_end(chain: ChainBuilder, batch: Batch | None) -> int | None:
    """End of the collection(s) whose units fed the batch; else the last collection's end."""
    ends = [
        chain.collections[unit.collection_id][1]
        for din in (batch.input_dins if batch else [])
        if (unit := chain.units.get(din)) is not None and unit.collection_id in chain.collections
    ]
    if not ends:
        ends = [ended for _, ended in chain.collections.values()]
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
        "oos": bool(kinds & {"oos-justified", "oos-accepted"}),
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

    def add_chain(self, kpis: dict[str, Any]) -> None:
        self.chains += 1
        if kpis["collections"]:
            self.with_collection += 1
            self.second_apheresis += kpis["second_apheresis"]
        if kpis["apheresis_to_infusion_hours"] is not None:
            self.infused += 1
            self.apheresis_to_infusion.append(kpis["apheresis_to_infusion_hours"])
        for stage, value in kpis["stage_hours"].items():
            if value is not None:
                self.stages[stage].append(value)

    def add_batch(self, outcome: dict[str, Any]) -> None:
        self.batches += 1
        self.harvested += outcome["status"] == "harvested"
        self.failed += outcome["status"] == "failed"
        self.released += outcome["released"]
        self.oos += outcome["oos"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "chains": self.chains,
            "infused": self.infused,
            "apheresis_to_infusion_hours": distribution(self.apheresis_to_infusion),
            "stage_hours": {stage: distribution(v) for stage, v in self.stages.items()},
            "batches": self.batches,
            "manufacturing_success_rate": rate(self.harvested, self.harvested + self.failed),
            "oos_rate": rate(self.oos, self.released),
            "second_apheresis_rate": rate(self.second_apheresis, self.with_collection),
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
