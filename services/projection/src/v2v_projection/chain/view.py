"""The JSON-ready chain view (keys shared with the audit tools; see fold.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from v2v_platform.conditions import Condition
from v2v_projection.chain.alert_kinds import severity
from v2v_projection.chain.builder import ChainBuilder, Excursion, Release, Shipment, Unit, Upload
from v2v_projection.chain.custody import UnitCustody, custody_alerts, custody_view, replay
from v2v_projection.chain.kpis import chain_kpis
from v2v_projection.chain.times import iso

RELEASE_STATUS = {
    "provisional": "provisionally-certified",
    "final": "finally-certified",
    "rejected": "rejected",
    "oos-justified": "oos-justified",
    "oos-accepted": "oos-released",
}
RANGES_C = {condition.value: condition.temperature_range_c for condition in Condition}
NOT_CREATED = Shipment("", (), "", "")


def chain_view(chain: ChainBuilder) -> dict[str, Any]:
    custody = replay(chain.custody)
    custody_alerts(chain, custody)
    alerts = sorted(chain.alerts)
    return {
        "coi": chain.coi,
        "stage": chain.stage,
        "treating_site_id": chain.treating_site_id,
        "sites": sorted(chain.sites),
        "updated_at": iso(chain.updated_ns),
        "units": [unit_view(unit, custody) for unit in sorted_units(chain)],
        "batches": [
            {
                "batch_id": batch.batch_id,
                "site_id": batch.site_id,
                "status": batch.status,
                "input_dins": list(batch.input_dins),
                "product_dins": list(batch.product_dins),
                "started_at": iso(batch.started_ns),
                "ended_at": iso(batch.ended_ns),
            }
            for batch in sorted(chain.batches.values(), key=lambda b: (b.started_ns, b.batch_id))
        ],
        "shipments": shipments_view(chain),
        "releases": [release_view(chain, r) for _, r in sorted(chain.releases.items())],
        "infusion": infusion_view(chain),
        "signatures": chain.signatures,
        "alerts": [
            {
                "kind": kind,
                "severity": severity(kind),
                "at": iso(at_ns),
                "detail": detail,
                "event_id": event_id,
            }
            for at_ns, kind, detail, event_id in alerts
        ],
        "kpis": chain_kpis(chain),
    }


def sorted_units(chain: ChainBuilder) -> list[Unit]:
    return sorted(chain.units.values(), key=lambda u: (u.created_ns or 0, u.din))


def unit_view(unit: Unit, custody: dict[str, UnitCustody]) -> dict[str, Any]:
    return {
        "din": unit.din,
        "kind": unit.kind,
        "condition": unit.condition,
        "created_at": iso(unit.created_ns),
        "parents": list(unit.parents),
        "batch_id": unit.batch_id,
        "custody": custody_view(custody, unit.din),
    }


def shipments_view(chain: ChainBuilder) -> list[dict[str, Any]]:
    """Every shipment the chain's facts name (created, delivered, logged), by creation time
    then id; one whose creation is not in the chain first, with what is known of it."""
    uploads: dict[str, list[Upload]] = {}
    for upload in chain.uploads:
        uploads.setdefault(upload.shipment_id, []).append(upload)
    named = (
        chain.shipments.keys() | chain.deliveries.keys() | uploads.keys() | chain.excursions.keys()
    )
    shipments = [
        chain.shipments.get(shipment_id) or NOT_CREATED._replace(shipment_id=shipment_id)
        for shipment_id in named
    ]
    shipments.sort(key=lambda s: (s.created_ns, s.shipment_id))
    return [
        shipment_view(
            shipment,
            chain.deliveries.get(shipment.shipment_id),
            uploads.get(shipment.shipment_id, ()),
            chain.excursions.get(shipment.shipment_id, ()),
        )
        for shipment in shipments
    ]


def shipment_view(
    shipment: Shipment,
    delivered_ns: int | None,
    uploads: Iterable[Upload],
    excursions: Iterable[Excursion],
) -> dict[str, Any]:
    found = RANGES_C.get(shipment.condition)
    return {
        "shipment_id": shipment.shipment_id,
        "origin_site_id": shipment.origin,
        "destination_site_id": shipment.destination,
        "condition": shipment.condition,
        "range_c": list(found) if found else None,
        "created_at": iso(shipment.created_ns) if shipment.created_ns else "",
        "delivered_at": iso(delivered_ns) or "",
        "readings": readings_view(uploads),
        "excursions": [
            {
                "started_at": iso(e.started_ns),
                "ended_at": iso(e.ended_ns),
                "duration_s": e.duration_s,
                "min_c": e.min_c,
                "max_c": e.max_c,
                "device_id": e.device_id,
            }
            for e in sorted(set(excursions))
        ],
    }


def readings_view(uploads: Iterable[Upload]) -> list[dict[str, Any]]:
    """Every logger reading once, by time, logger and value (uploads may overlap)."""
    readings: set[tuple[int, str, float]] = set()
    add = readings.add
    for _, device_id, uploaded in uploads:
        for reading in uploaded:
            measured = reading.measured_at
            add(
                (
                    measured.seconds * 1_000_000_000 + measured.nanos,
                    device_id,
                    reading.temperature_c,
                )
            )
    return [{"at": iso(ns), "c": c, "device_id": device} for ns, device, c in sorted(readings)]


def release_view(chain: ChainBuilder, release: Release) -> dict[str, Any]:
    decisions = sorted(release.decisions, key=lambda d: (d.at_ns, d.event_id))
    return {
        "batch_id": release.batch_id,
        "status": RELEASE_STATUS[decisions[-1].kind] if decisions else "open",
        "spec_version": release.spec_version,
        "decisions": [
            {"decision": d.kind, "at": iso(d.at_ns), "signature": d.signature} for d in decisions
        ],
        "post_release_failures": [
            {
                "failure_id": failure_id,
                "test": test,
                "acknowledged": failure_id in chain.acknowledged,
            }
            for failure_id, (test, _, _) in sorted(release.failures.items())
        ],
    }


def infusion_view(chain: ChainBuilder) -> dict[str, Any] | None:
    infusion = chain.infusion
    if infusion is None:
        return None
    return {
        "status": infusion.status,
        "din": infusion.din,
        "administered_at": iso(infusion.administered_ns),
        "adverse_events": sorted(infusion.adverse_events, key=lambda e: (e["onset_at"], e["kind"])),
    }
