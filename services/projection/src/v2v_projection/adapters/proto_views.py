"""Chain views (JSON-ready dicts, ISO-8601 times) -> v2v.projection.v1 messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from v2v.projection.v1 import projection_service_pb2 as pb


def stamp(text: str | None) -> Timestamp | None:
    if not text:
        return None
    value = Timestamp()
    value.FromDatetime(datetime.fromisoformat(text))
    return value


def signature(shown: dict[str, Any] | None) -> pb.Signature | None:
    if not shown:
        return None
    return pb.Signature(
        user_id=shown["user_id"],
        printed_name=shown["printed_name"],
        meaning=shown["meaning"],
        signed_at=stamp(shown["signed_at"]),
        record_hash=shown.get("record_hash", ""),
    )


def unit(shown: dict[str, Any]) -> pb.Unit:
    return pb.Unit(
        din=shown["din"],
        kind=shown["kind"],
        condition=shown["condition"],
        created_at=stamp(shown["created_at"]),
        parents=shown["parents"],
        batch_id=shown["batch_id"],
        custody=[
            pb.CustodyInterval(
                custodian=held["custodian"],
                site_id=held["site_id"],
                held_from=stamp(held["from"]),
                held_until=stamp(held["to"]),
            )
            for held in shown["custody"]
        ],
    )


def alert(shown: dict[str, Any], coi: str) -> pb.Alert:
    return pb.Alert(
        kind=shown["kind"],
        at=stamp(shown["at"]),
        detail=shown["detail"],
        event_id=shown["event_id"],
        coi=coi,
        severity=shown.get("severity", ""),
    )


def release(shown: dict[str, Any]) -> pb.Release:
    return pb.Release(
        batch_id=shown["batch_id"],
        status=shown["status"],
        spec_version=shown["spec_version"],
        decisions=[
            pb.ReleaseDecision(
                decision=d["decision"], at=stamp(d["at"]), signature=signature(d["signature"])
            )
            for d in shown["decisions"]
        ],
        post_release_failures=[pb.PostReleaseFailure(**f) for f in shown["post_release_failures"]],
    )


def infusion(shown: dict[str, Any] | None) -> pb.Infusion | None:
    if shown is None:
        return None
    return pb.Infusion(
        status=shown["status"],
        din=shown["din"],
        administered_at=stamp(shown["administered_at"]),
        adverse_events=[
            pb.AdverseEvent(
                kind=e["kind"], grade=e["grade"], onset_at=stamp(e["onset_at"]), din=e["din"]
            )
            for e in shown["adverse_events"]
        ],
    )


def chain_kpis(shown: dict[str, Any]) -> pb.ChainKpis:
    return pb.ChainKpis(
        apheresis_to_infusion_hours=shown["apheresis_to_infusion_hours"],
        stage_hours=[
            pb.StageDuration(stage=stage, hours=hours)
            for stage, hours in shown["stage_hours"].items()
        ],
        collections=shown["collections"],
        second_apheresis=shown["second_apheresis"],
        infused=shown["infused"],
        excluded_intervals=[
            pb.ExcludedInterval(kpi=e["kpi"], to=stamp(e["to"]), **{"from": stamp(e["from"])})
            for e in shown["excluded_intervals"]
        ],
    )


def chain(view: dict[str, Any]) -> pb.Chain:
    return pb.Chain(
        coi=view["coi"],
        stage=view["stage"],
        treating_site_id=view["treating_site_id"],
        sites=view["sites"],
        updated_at=stamp(view["updated_at"]),
        units=[unit(u) for u in view["units"]],
        batches=[
            pb.Batch(
                batch_id=b["batch_id"],
                site_id=b["site_id"],
                status=b["status"],
                input_dins=b["input_dins"],
                product_dins=b["product_dins"],
                started_at=stamp(b["started_at"]),
                ended_at=stamp(b["ended_at"]),
            )
            for b in view["batches"]
        ],
        releases=[release(r) for r in view["releases"]],
        infusion=infusion(view["infusion"]),
        signatures=[
            pb.SignedEvent(
                event_type=s["event_type"],
                aggregate_id=s["aggregate_id"],
                version=s["version"],
                signature=signature(s),
            )
            for s in view["signatures"]
        ],
        alerts=[alert(a, view["coi"]) for a in view["alerts"]],
        kpis=chain_kpis(view["kpis"]),
    )


def summary(shown: dict[str, Any]) -> pb.ChainSummary:
    return pb.ChainSummary(
        coi=shown["coi"],
        stage=shown["stage"],
        treating_site_id=shown["treating_site_id"],
        sites=shown["sites"],
        updated_at=stamp(shown["updated_at"]),
        alert_count=shown["alert_count"],
    )


def distribution(shown: dict[str, Any]) -> pb.Distribution:
    return pb.Distribution(n=shown["n"], median=shown["median"], p90=shown["p90"])


def kpi_summary(shown: dict[str, Any]) -> pb.KpiSummary:
    return pb.KpiSummary(
        chains=shown["chains"],
        infused=shown["infused"],
        apheresis_to_infusion_hours=distribution(shown["apheresis_to_infusion_hours"]),
        stage_hours=[
            pb.StageDistribution(stage=stage, hours=distribution(values))
            for stage, values in shown["stage_hours"].items()
        ],
        batches=shown["batches"],
        manufacturing_success_rate=shown["manufacturing_success_rate"],
        oos_rate=shown["oos_rate"],
        second_apheresis_rate=shown["second_apheresis_rate"],
        excluded_intervals=shown["excluded_intervals"],
    )


def kpis(shown: dict[str, Any]) -> pb.GetKpisResponse:
    return pb.GetKpisResponse(
        consortium=kpi_summary(shown["consortium"]),
        sites=[
            pb.SiteKpis(site_id=site, kpis=kpi_summary(values))
            for site, values in shown["sites"].items()
        ],
    )
