"""Manufacturing facts: slot bookings, receipts (and refused receipt scans), batches from input
units to product units (lineage), refused batch starts (inputs of several COIs), failures,
fresh-window overrides."""

from __future__ import annotations

from v2v.manufacturing.events.v1 import events_pb2 as pb
from v2v_projection.chain.alert_kinds import STABILITY_WINDOW_BREACH
from v2v_projection.chain.alerts import identity_mismatch
from v2v_projection.chain.applied_envelope import Fact
from v2v_projection.chain.builder import Batch, ChainBuilder, condition_name
from v2v_projection.chain.registry import handles, marks
from v2v_projection.chain.times import NS_PER_HOUR, iso, stamp_ns


@handles(pb.SlotBooked)
def slot_booked(chain: ChainBuilder, fact: Fact, event: pb.SlotBooked) -> None:
    """The GMP site's own record of a booking: related when the booking site is (never the
    other way round: booking a slot relates no hospital to a COI)."""
    if event.manufacturing_site_id == fact.site_id:
        chain.link(event.booking_site_id, fact.site_id)
    chain.reach("enrolled")


marks(pb.SlotReleased, "")


@handles(pb.UnitReceived)
def unit_received(chain: ChainBuilder, fact: Fact, event: pb.UnitReceived) -> None:
    unit = chain.unit(event.din, "apheresis")
    unit.condition = unit.condition or condition_name(event.condition)
    if unit.window_starts_ns is None and event.HasField("window_starts_at"):
        unit.window_starts_ns = stamp_ns(event.window_starts_at)
    site = event.manufacturing_site_id
    chain.move(fact, "claim", [event.din], stamp_ns(event.received_at), to_party=f"site:{site}")
    chain.reach("manufacturing")


@handles(pb.UnitReceiptMismatchRecorded)
def receipt_mismatch(
    chain: ChainBuilder, fact: Fact, event: pb.UnitReceiptMismatchRecorded
) -> None:
    detail = (
        f"receipt scan refused at {event.manufacturing_site_id} ({event.reason_code}):"
        f" scanned {event.scanned_din or '(no DIN)'} / {event.scanned_coi or '(no COI)'}"
    )
    identity_mismatch(chain, event.reason_code, fact.occurred_ns, detail, fact.event_id)


@handles(pb.BatchInputsMismatchRecorded)
def batch_inputs_mismatch(
    chain: ChainBuilder, fact: Fact, event: pb.BatchInputsMismatchRecorded
) -> None:
    """A batch start refused because its inputs belong to several COIs (recorded on each)."""
    inputs = ", ".join(
        f"{din} ({coi or '?'})"
        for din, coi in zip(event.input_dins, event.input_cois, strict=False)
    )
    detail = (
        f"batch start refused at {event.manufacturing_site_id} ({event.reason_code}):"
        f" inputs {inputs or '(none)'}"
    )
    at = stamp_ns(event.refused_at) or fact.occurred_ns
    identity_mismatch(chain, event.reason_code, at, detail, fact.event_id)


@handles(pb.UnitAllocatedToBatch)
def unit_allocated(chain: ChainBuilder, fact: Fact, event: pb.UnitAllocatedToBatch) -> None:
    chain.unit(event.din, "apheresis").batch_id = event.batch_id


@handles(pb.BatchStarted)
def batch_started(chain: ChainBuilder, fact: Fact, event: pb.BatchStarted) -> None:
    started = stamp_ns(event.started_at)
    inputs = list(event.input_dins)
    chain.batches[event.batch_id] = Batch(
        event.batch_id, event.manufacturing_site_id, inputs, started
    )
    recorded_by(chain, fact, event.batch_id)
    for din in inputs:
        chain.unit(din, "apheresis").batch_id = event.batch_id
    chain.move(fact, "end", inputs, started)
    signature = chain.sign(fact, event.override_signature)
    if event.window_overridden:
        by = f" by {signature['printed_name']}" if signature else ""
        detail = (
            f"batch {event.batch_id} started {iso(started)} past the"
            f" {event.fresh_window_hours} h fresh window (overridden{by})"
        )
        chain.alert(STABILITY_WINDOW_BREACH, started, detail, fact.event_id)
    check_fresh_inputs(chain, fact, event, started)
    chain.reach("manufacturing")


def check_fresh_inputs(
    chain: ChainBuilder, fact: Fact, event: pb.BatchStarted, started: int
) -> None:
    """A fresh input past collection end + window without an override is a breach too."""
    if event.window_overridden or not event.fresh_window_hours:
        return
    limit = event.fresh_window_hours * NS_PER_HOUR
    for din in event.input_dins:
        unit = chain.units.get(din)
        if unit is None or unit.condition == "cryo" or unit.window_starts_ns is None:
            continue
        if started - unit.window_starts_ns > limit:
            hours = event.fresh_window_hours
            detail = f"fresh unit {din} started {iso(started)}, past its {hours} h window"
            chain.alert(STABILITY_WINDOW_BREACH, started, detail, fact.event_id)


marks(pb.ProcessStepRecorded, "manufacturing")


marks(pb.InProcessQcRecorded, "manufacturing")


@handles(pb.ProductUnitsCreated)
def products_created(chain: ChainBuilder, fact: Fact, event: pb.ProductUnitsCreated) -> None:
    created = stamp_ns(event.created_at)
    batch = known_batch(chain, fact, event.batch_id, list(event.input_dins))
    recorded_by(chain, fact, event.batch_id)
    batch.product_dins = list(event.product_dins)
    batch.status, batch.ended_ns = "harvested", created
    site = batch.site_id
    for din in event.product_dins:
        unit = chain.unit(din, "product")
        unit.kind, unit.created_ns, unit.batch_id = "product", created, event.batch_id
        unit.parents = list(event.input_dins)
        unit.condition = condition_name(event.hold_condition)
    chain.move(fact, "claim", list(event.product_dins), created, to_party=f"site:{site}")
    chain.reach("manufacturing")


@handles(pb.BatchFailed)
def batch_failed(chain: ChainBuilder, fact: Fact, event: pb.BatchFailed) -> None:
    batch = known_batch(chain, fact, event.batch_id, [])
    recorded_by(chain, fact, event.batch_id)
    batch.status, batch.ended_ns = "failed", stamp_ns(event.failed_at) or fact.occurred_ns
    chain.reach("batch-failed")


def recorded_by(chain: ChainBuilder, fact: Fact, batch_id: str) -> None:
    """The GMP site recorded the batch: it vouches for the batch's QC site."""
    authors = chain.batch_authors.get(batch_id)
    if authors is None:
        authors = chain.batch_authors[batch_id] = set()
    authors.add(fact.site_id)


def known_batch(chain: ChainBuilder, fact: Fact, batch_id: str, inputs: list[str]) -> Batch:
    """The batch, or (its start missing from the history) one known from this fact only."""
    batch = chain.batches.get(batch_id)
    if batch is None:
        batch = chain.batches[batch_id] = Batch(batch_id, fact.site_id, inputs, fact.occurred_ns)
    return batch
