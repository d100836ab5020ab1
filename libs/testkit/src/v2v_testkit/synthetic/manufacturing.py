"""Manufacturing in a synthetic journey: receipt at the GMP site (rarely a refused receipt
scan), the batch from the received units (steps, in-process QC, a fresh-window override when
late), then product units or a failed batch."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from v2v.manufacturing.events.v1 import events_pb2 as manufacturing
from v2v_testkit.synthetic.collection import Collected
from v2v_testkit.synthetic.consortium import COLD, CRYO, Condition, stamp
from v2v_testkit.synthetic.patient import Journey

STEPS = (
    ("selection", 60, 120),
    ("activation", 120, 240),
    ("transduction", 18 * 60, 26 * 60),
    ("expansion", 2 * 24 * 60, 4 * 24 * 60),
    ("harvest", 3 * 24 * 60, 5 * 24 * 60),
    ("formulation", 60, 180),
)


@dataclass(frozen=True)
class Made:
    batch_id: str
    product_dins: list[str]
    hold: Condition
    created_at: datetime
    started_at: datetime


def receive(journey: Journey, collections: list[Collected], cycle: int) -> None:
    gmp = journey.manufacturing_site
    operator = journey.person(gmp, "manufacturing")
    journey.advance(10, 40)
    if journey.chance(0.03):
        scanned = collections[0].dins[0]
        mismatch = manufacturing.UnitReceiptMismatchRecorded(
            coi=journey.coi,
            scanned_din=scanned,
            scanned_coi=f"{journey.coi[:-1]}{'X' if journey.coi[-1] != 'X' else 'Y'}",
            reason_code="coi-mismatch",
            explanation=f"unit {scanned} belongs to {journey.coi}, not to the scanned COI",
            manufacturing_site_id=gmp,
        )
        aggregate = ("ReceiptMismatch", journey.uid("receipt-mismatch", cycle))
        journey.add("manufacturing", aggregate, mismatch, gmp, operator)
    for collected in collections:
        for din in collected.dins:
            journey.advance(1, 5)
            received = manufacturing.UnitReceived(
                coi=journey.coi,
                din=din,
                manufacturing_site_id=gmp,
                slot_id=journey.slot_id,
                condition=collected.condition,
                window_starts_at=stamp(collected.window_starts_at),
                received_at=stamp(journey.now),
            )
            aggregate = ("ReceivedUnit", journey.uid("received-unit", din))
            journey.add("manufacturing", aggregate, received, gmp, operator)


def manufacture(journey: Journey, collections: list[Collected], cycle: int) -> Made | None:
    """A batch from the received units; None when it failed."""
    gmp = journey.manufacturing_site
    operator = journey.person(gmp, "manufacturing")
    receive(journey, collections, cycle)
    batch_id = journey.uid("batch", cycle)
    batch = ("Batch", batch_id)
    inputs = [din for collected in collections for din in collected.dins]
    started = journey.advance(60, 240)
    fresh, rules = collections[0].condition != CRYO, journey.rules
    late = fresh and started - collections[0].window_starts_at > rules.fresh_apheresis
    begun = manufacturing.BatchStarted(
        coi=journey.coi,
        batch_id=batch_id,
        manufacturing_site_id=gmp,
        input_dins=inputs,
        started_at=stamp(started),
        fresh_window_hours=rules.fresh_apheresis_hours,
        window_overridden=late,
        protocol_rules=rules.tag,
    )
    reason, meaning = "", ""
    if late:
        qp = journey.person(gmp, "qp")
        begun.override_signature.CopyFrom(journey.signature(qp, "approval", batch_id))
        reason, meaning = "input viable on re-count; patient cannot wait", "approval"
    journey.add("manufacturing", batch, begun, gmp, operator, reason=reason, meaning=meaning)
    for din in inputs:
        allocated = manufacturing.UnitAllocatedToBatch(coi=journey.coi, din=din, batch_id=batch_id)
        aggregate = ("ReceivedUnit", journey.uid("received-unit", din))
        journey.add("manufacturing", aggregate, allocated, gmp, operator)
    if not process(journey, batch, operator):
        return None
    created = journey.advance(30, 90)
    hold = COLD if fresh and journey.chance(0.7) else CRYO
    product_dins = [journey.din(gmp) for _ in range(2 if journey.chance(0.25) else 1)]
    products = manufacturing.ProductUnitsCreated(
        coi=journey.coi,
        batch_id=batch_id,
        product_dins=product_dins,
        input_dins=inputs,
        hold_condition=hold,
        created_at=stamp(created),
    )
    journey.add("manufacturing", batch, products, gmp, operator)
    return Made(batch_id, product_dins, hold, created, started)


def process(journey: Journey, batch: tuple[str, str], operator: tuple[str, str, str]) -> bool:
    """The process steps and in-process QC; False when the batch failed (and was recorded)."""
    gmp = journey.manufacturing_site
    device = journey.rng.choice((("CliniMACS Prodigy", "PRD-"), ("Lonza Cocoon", "CCN-")))
    serial = f"{device[1]}{journey.rng.randrange(100, 999)}"
    for kind, low, high in STEPS:
        journey.advance(low, high)
        step = manufacturing.ProcessStepRecorded(
            coi=journey.coi,
            batch_id=batch[1],
            step_kind=kind,
            device_type=device[0],
            device_serial=serial,
            reagent_lots=[f"LOT-{kind[:3].upper()}-{journey.rng.randrange(1000, 9999)}"],
            vector_lot=f"VEC-{journey.rng.randrange(100, 999)}" if kind == "transduction" else "",
            parameters=[manufacturing.ProcessParameter(name="IL-2 (IU/mL)", value="100")],
            performed_at=stamp(journey.now),
        )
        journey.add("manufacturing", batch, step, gmp, operator)
        if kind == "expansion":
            failed = journey.chance(0.07)
            qc = manufacturing.InProcessQcRecorded(
                coi=journey.coi,
                batch_id=batch[1],
                test="viable-cell-count",
                value=round(
                    journey.rng.uniform(0.2, 0.6) if failed else journey.rng.uniform(1, 4), 2
                ),
                unit="10^9 cells",
                passed=not failed,
                measured_at=stamp(journey.now),
            )
            journey.add("manufacturing", batch, qc, gmp, operator)
            if failed:
                journey.advance(30, 120)
                reason = "insufficient expansion"
                failure = manufacturing.BatchFailed(
                    coi=journey.coi, batch_id=batch[1], failure_reason=reason
                )
                journey.add("manufacturing", batch, failure, gmp, operator, reason=reason)
                return False
    return True
