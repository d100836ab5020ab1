"""Logistics facts: shipments, custody handoffs, refused scans, window breaches, logger
readings and temperature excursions (the chain of condition), delivery (with a signed window
override), exceptions (a lost shipment ends its custodian's custody without a successor).
Custodians may be departments of a site (`site:<ID>/<department>`): a shipment from a
department takes the units from its site as a whole, and a delivery to a department hands them
to that department."""

from __future__ import annotations

from v2v.logistics.events.v1 import events_pb2 as pb
from v2v_projection.chain.alert_kinds import (
    SHIPMENT_EXCEPTION,
    STABILITY_WINDOW_BREACH,
    TEMPERATURE_EXCURSION,
)
from v2v_projection.chain.alerts import identity_mismatch
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import (
    ChainBuilder,
    Excursion,
    Shipment,
    Upload,
    condition_name,
)
from v2v_projection.chain.registry import handles, marks
from v2v_projection.chain.times import iso, stamp_ns


def party(site_id: str, department: str = "") -> str:
    """`site:<ID>`, or `site:<ID>/<department>` for one of its departments."""
    return f"site:{site_id}/{department}" if department else f"site:{site_id}"


def manifest(chain: ChainBuilder, shipment_id: str) -> tuple[str, ...]:
    shipment = chain.shipments.get(shipment_id)
    return shipment.manifest if shipment else ()


@handles(pb.ShipmentCreated)
def shipment_created(chain: ChainBuilder, fact: Fact, event: pb.ShipmentCreated) -> None:
    dins = tuple(event.manifest_dins)
    created = stamp_ns(event.created_at) or fact.occurred_ns
    chain.shipments[event.shipment_id] = Shipment(
        event.shipment_id,
        dins,
        event.origin_site_id,
        event.destination_site_id,
        condition_name(event.condition),
        created,
    )
    chain.link(event.origin_site_id, event.destination_site_id, fact.site_id)
    if event.origin_department:  # the department takes what its site held as a whole
        site = party(event.origin_site_id)
        chain.move(fact, "transfer", dins, created, from_party=site, to_party=event.custodian)
    else:
        chain.move(fact, "claim", dins, created, to_party=event.custodian)
    products = any(
        chain.units.get(din, None) and chain.units[din].kind == "product" for din in dins
    )
    chain.reach("shipping-to-treatment" if products else "shipping-to-manufacturing")


marks(pb.CourierAssigned, "")
marks(pb.HandoffOffered, "")  # custody passes only when the receiver confirms


marks(pb.UnitScanned, "")


@handles(pb.CustodyHandedOver)
def custody_handed_over(chain: ChainBuilder, fact: Fact, event: pb.CustodyHandedOver) -> None:
    at = stamp_ns(event.scanned_at) or fact.occurred_ns
    dins = manifest(chain, event.shipment_id)
    chain.move(fact, "transfer", dins, at, from_party=event.from_party, to_party=event.to_party)


@handles(pb.ScanMismatchRecorded)
def scan_mismatch(chain: ChainBuilder, fact: Fact, event: pb.ScanMismatchRecorded) -> None:
    at = stamp_ns(event.scanned_at) or fact.occurred_ns
    detail = (
        f"scan refused on shipment {event.shipment_id} ({event.reason_code}): {event.explanation}"
    )
    identity_mismatch(chain, event.reason_code, at, detail, fact.event_id)


@handles(pb.StabilityWindowBreached)
def window_breached(chain: ChainBuilder, fact: Fact, event: pb.StabilityWindowBreached) -> None:
    detected = stamp_ns(event.detected_at) or fact.occurred_ns
    detail = (
        f"shipment {event.shipment_id}: stability window ended"
        f" {iso(stamp_ns(event.window_ends_at))},"
        f" detected at {event.checkpoint or 'a checkpoint'} {iso(detected)}"
    )
    chain.alert(STABILITY_WINDOW_BREACH, detected, detail, fact.event_id)


@handles(pb.TemperatureReadingsRecorded)
def readings(chain: ChainBuilder, fact: Fact, event: pb.TemperatureReadingsRecorded) -> None:
    """Kept as uploaded: the view merges a shipment's uploads (view.py)."""
    chain.uploads.append(Upload(event.shipment_id, event.device_id, event.readings))


@handles(pb.TemperatureExcursionRecorded)
def excursion(chain: ChainBuilder, fact: Fact, event: pb.TemperatureExcursionRecorded) -> None:
    started = stamp_ns(event.started_at) or fact.occurred_ns
    ended = stamp_ns(event.ended_at) or started
    found = Excursion(
        started, event.device_id, ended, event.duration_seconds, event.min_c, event.max_c
    )
    chain.excursions.setdefault(event.shipment_id, []).append(found)
    detail = (
        f"shipment {event.shipment_id}, logger {event.device_id}: {event.min_c:g} to"
        f" {event.max_c:g} °C for {event.duration_seconds // 60} min"
    )
    chain.alert(TEMPERATURE_EXCURSION, started, detail, fact.event_id)


@handles(pb.ShipmentDelivered)
def delivered(chain: ChainBuilder, fact: Fact, event: pb.ShipmentDelivered) -> None:
    at = stamp_ns(event.received_at) or fact.occurred_ns
    chain.deliveries.setdefault(event.shipment_id, at)
    dins = manifest(chain, event.shipment_id)
    taker = party(event.destination_site_id, event.destination_department)
    chain.move(fact, "transfer", dins, at, from_party=event.from_party, to_party=taker)
    chain.sign(fact, event.override_signature)


@handles(pb.ReceiptInspected)
def receipt_inspected(chain: ChainBuilder, fact: Fact, event: pb.ReceiptInspected) -> None:
    if not event.intact:
        detail = f"shipment {event.shipment_id} arrived damaged: {event.notes or 'no notes'}"
        chain.alert(SHIPMENT_EXCEPTION, stamp_ns(event.inspected_at), detail, fact.event_id)


@handles(pb.ShipmentExceptionRecorded)
def shipment_exception(
    chain: ChainBuilder, fact: Fact, event: pb.ShipmentExceptionRecorded
) -> None:
    at = stamp_ns(event.occurred_at) or stamp_ns(event.recorded_at) or fact.occurred_ns
    detail = f"shipment {event.shipment_id} {event.kind} while held by {event.custodian}"
    chain.alert(SHIPMENT_EXCEPTION, at, detail, fact.event_id)
    if event.kind == "lost":
        dins = manifest(chain, event.shipment_id)
        chain.move(fact, "transfer", dins, at, from_party=event.custodian, to_party="")
