"""Shipments of a synthetic journey: manifest, courier scans and custody handoffs, logger
readings (rarely an excursion), stability-window breaches with a signed override, delivery and
receipt inspection. All authored by the logistics service's site."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from v2v.logistics.events.v1 import events_pb2 as logistics
from v2v_testkit.synthetic.consortium import (
    COURIERS,
    CRYO,
    FINS,
    GMP_SITES,
    LOGISTICS_SITE,
    Condition,
    stamp,
)
from v2v_testkit.synthetic.patient import Journey


@dataclass(frozen=True)
class Route:
    origin: str
    destination: str
    condition: Condition
    window_ends_at: datetime | None
    window_rule: str


def ship(journey: Journey, dins: list[str], route: Route, purpose: str) -> datetime:
    """A shipment from origin to destination; returns the delivery time."""
    shipment_id = journey.uid("shipment", purpose)
    aggregate = ("Shipment", shipment_id)
    sender = journey.person(route.origin, "collection" if route.origin in FINS else "qc")
    couriers = journey.rng.sample(COURIERS, 2)
    journey.advance(30, 90)
    created = logistics.ShipmentCreated(
        coi=journey.coi,
        shipment_id=shipment_id,
        manifest_dins=dins,
        condition=route.condition,
        origin_site_id=route.origin,
        destination_site_id=route.destination,
        shipper_id=f"{'DEWAR' if route.condition == CRYO else 'BOX'}-{journey.rng.randrange(40)}",
        data_logger_id=f"LOGGER-{journey.rng.randrange(1, 60)}",
        custodian=f"site:{route.origin}",
        assigned_courier_id=couriers[0],
        window_rule=route.window_rule,
        created_at=stamp(journey.now),
        protocol_rules=journey.rules.tag,
    )
    if route.window_ends_at is not None:
        created.window_ends_at.CopyFrom(stamp(route.window_ends_at))
    journey.add("logistics", aggregate, created, LOGISTICS_SITE, sender)
    holder = f"site:{route.origin}"
    excursions = 0
    for leg in range(2 if journey.chance(0.3) else 1):
        holder = handover(journey, aggregate, dins, holder, f"courier:{couriers[leg]}", leg)
        excursions += record_temperatures(journey, aggregate, created.data_logger_id, route)
    late = route.window_ends_at is not None and journey.chance(0.03)
    if late and route.window_ends_at is not None:
        journey.now = max(journey.now, route.window_ends_at + timedelta(minutes=40))
    return deliver(journey, aggregate, route, holder, late, excursions)


def handover(
    journey: Journey, aggregate: tuple[str, str], dins: list[str], holder: str, to: str, leg: int
) -> str:
    courier = journey.person(LOGISTICS_SITE, "courier", leg)
    journey.advance(20, 120 if leg == 0 else 600)
    for din in dins:
        journey.advance(0.2, 1)
        scanned = logistics.UnitScanned(
            coi=journey.coi,
            shipment_id=aggregate[1],
            din=din,
            from_party=holder,
            receiving_party=to,
            scanned_at=stamp(journey.now),
            idempotency_key=journey.uid("scan", aggregate[1], leg, din),
        )
        journey.add(
            "logistics", aggregate, scanned, LOGISTICS_SITE, courier, occurred_at=journey.now
        )
    if journey.chance(0.05):
        journey.advance(0.2, 1)
        other = f"{dins[0][:5]}25{journey.rng.randrange(900_000, 999_999):06d}00"
        mismatch = logistics.ScanMismatchRecorded(
            coi=journey.coi,
            shipment_id=aggregate[1],
            reason_code="unknown-unit",
            explanation=f"unit {other} is not on this shipment's manifest",
            scanned_label=other,
            from_party=holder,
            receiving_party=to,
            scanned_at=stamp(journey.now),
            idempotency_key=journey.uid("mismatch", aggregate[1], leg),
        )
        journey.add(
            "logistics", aggregate, mismatch, LOGISTICS_SITE, courier, occurred_at=journey.now
        )
    journey.advance(0.5, 2)
    handed = logistics.CustodyHandedOver(
        coi=journey.coi,
        shipment_id=aggregate[1],
        from_party=holder,
        to_party=to,
        status="picked-up" if leg == 0 else "in-transit",
        scanned_at=stamp(journey.now),
        idempotency_key=journey.uid("handoff", aggregate[1], leg),
    )
    journey.add("logistics", aggregate, handed, LOGISTICS_SITE, courier, occurred_at=journey.now)
    return to


def record_temperatures(
    journey: Journey, aggregate: tuple[str, str], logger: str, route: Route
) -> int:
    """Logger readings of the leg; rarely an excursion of fresh goods (returns how many)."""
    condition = route.condition
    base = -170.0 if condition == CRYO else 5.0
    start = journey.advance(60, 240)
    readings = [
        logistics.TemperatureReading(
            measured_at=stamp(start + timedelta(minutes=10 * i)),
            temperature_c=round(base + journey.rng.uniform(-1.5, 1.5), 2),
        )
        for i in range(6)
    ]
    recorded = logistics.TemperatureReadingsRecorded(
        coi=journey.coi, shipment_id=aggregate[1], device_id=logger, readings=readings
    )
    sender = journey.person(LOGISTICS_SITE, "courier", 0)
    journey.add("logistics", aggregate, recorded, LOGISTICS_SITE, sender)
    if condition != CRYO and journey.chance(0.08):
        began = start + timedelta(minutes=20)
        excursion = logistics.TemperatureExcursionRecorded(
            coi=journey.coi,
            shipment_id=aggregate[1],
            device_id=logger,
            started_at=stamp(began),
            ended_at=stamp(began + timedelta(minutes=30)),
            duration_seconds=1800,
            min_c=8.4,
            max_c=round(journey.rng.uniform(9, 12), 1),
            condition=condition,
        )
        journey.add("logistics", aggregate, excursion, LOGISTICS_SITE, sender)
        return 1
    return 0


def deliver(
    journey: Journey,
    aggregate: tuple[str, str],
    route: Route,
    holder: str,
    late: bool,
    excursions: int,
) -> datetime:
    receiver_role = "manufacturing" if route.destination in GMP_SITES else "infusion"
    receiver = journey.person(route.destination, receiver_role)
    journey.advance(60, 300)
    delivered = logistics.ShipmentDelivered(
        coi=journey.coi,
        shipment_id=aggregate[1],
        from_party=holder,
        destination_site_id=route.destination,
        received_at=stamp(journey.now),
    )
    meaning, reason = "", ""
    if late and route.window_ends_at is not None:
        breached = logistics.StabilityWindowBreached(
            coi=journey.coi,
            shipment_id=aggregate[1],
            window_ends_at=stamp(route.window_ends_at),
            detected_at=stamp(journey.now),
            checkpoint="receipt",
        )
        journey.add("logistics", aggregate, breached, LOGISTICS_SITE, receiver)
        qp = journey.person(route.destination, "qp") if route.destination in GMP_SITES else receiver
        delivered.window_overridden = True
        delivered.override_signature.CopyFrom(journey.signature(qp, "approval", aggregate[1]))
        meaning, reason = "approval", "patient cannot wait; viability checked"
    delivered_at = journey.now
    journey.add(
        "logistics", aggregate, delivered, LOGISTICS_SITE, receiver, reason=reason, meaning=meaning
    )
    journey.advance(10, 40)
    inspected = logistics.ReceiptInspected(
        coi=journey.coi,
        shipment_id=aggregate[1],
        intact=True,
        temperature_log_reviewed=True,
        excursion_count=excursions,
        notes="box intact, logger reviewed",
        inspected_at=stamp(journey.now),
    )
    journey.add("logistics", aggregate, inspected, LOGISTICS_SITE, receiver)
    return delivered_at
