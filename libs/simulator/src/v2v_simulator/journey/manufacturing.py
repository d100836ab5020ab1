"""Manufacturing at the GMP site: receive the bags once intake's facts reached it, start a
batch from them, record the process steps and in-process QC, then harvest the product bag
(fresh hold or cryopreserved), or fail the batch when in-process QC fails."""

from __future__ import annotations

from v2v.common.v1.common_pb2 import CONDITION_CRYO, CONDITION_FRESH_COLD
from v2v.manufacturing.v1 import manufacturing_service_pb2 as pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.context import Journey, Unexpected

STEPS: tuple[tuple[str, str, list[str], str], ...] = (
    ("selection", "CliniMACS Prodigy", [], ""),
    ("activation", "CliniMACS Prodigy", ["TransAct-2291"], ""),
    ("transduction", "CliniMACS Prodigy", ["TC-77"], "LV-2025-011"),
    ("expansion", "CliniMACS Prodigy", ["IL-7/15-405"], ""),
    ("formulation", "Sepax C-Pro", ["CryoStor-CS10"], ""),
)


def manufacture(journey: Journey, cycle: int, fails: bool) -> bool:
    """True when product units were harvested, False when the batch failed."""
    gmp = journey.plan.hospital.gmp
    times = journey.calendar.cycles[cycle - 1]
    station = journey.world.clients.manufacturing(gmp.site_id)
    dins = set(journey.apheresis_dins)

    def expected() -> bool:
        reply = call(station.ListExpectedUnits, pb.ListExpectedUnitsRequest(coi=journey.coi))
        ready = {u.din for u in reply.units if u.slot_id}
        return dins <= ready

    with journey.step("bags expected at GMP"):
        journey.poll(expected, "intake's packaged bags to reach manufacturing")
    for din in journey.apheresis_dins:
        with journey.step("receive bag at GMP"):
            request = pb.ReceiveUnitRequest(
                operator=gmp.operator,
                scanned_din=din,
                scanned_coi=journey.coi,
                received_at=timestamp(times.received_at_gmp),
            )
            received = call(station.ReceiveUnit, request)
            if received.coi != journey.coi:
                raise Unexpected(f"bag {din} was received under COI {received.coi}")
    with journey.step("start batch"):
        started = call(
            station.StartBatch,
            pb.StartBatchRequest(
                operator=gmp.operator,
                input_dins=journey.apheresis_dins,
                started_at=timestamp(times.batch_started),
            ),
        )
        journey.batch_id = started.batch_id
    for (kind, device, lots, vector), performed in zip(STEPS, times.steps, strict=False):
        with journey.step(f"process step {kind}"):
            call(
                station.RecordProcessStep,
                pb.RecordProcessStepRequest(
                    operator=gmp.operator,
                    batch_id=journey.batch_id,
                    step_kind=kind,
                    device_type=device,
                    device_serial=f"{device.split()[0].upper()}-{journey.plan.number % 7:04d}",
                    reagent_lots=lots,
                    vector_lot=vector,
                    performed_at=timestamp(performed),
                ),
            )
    with journey.step("in-process QC"):
        viability = 48.0 if fails else 91.0
        call(
            station.RecordInProcessQc,
            pb.RecordInProcessQcRequest(
                operator=gmp.operator,
                batch_id=journey.batch_id,
                test="viability",
                value=viability,
                unit="%",
                passed=not fails,
                measured_at=timestamp(times.in_process_qc),
            ),
        )
    if fails:
        with journey.step("fail batch"):
            reason = "in-process viability 48 % (< 70 %): the expansion failed"
            failure = pb.FailBatchRequest(
                operator=gmp.operator,
                batch_id=journey.batch_id,
                reason=reason,
                failed_at=timestamp(times.batch_ended),
            )
            call(station.FailBatch, failure)
        return False
    with journey.step("harvest product"):
        hold = CONDITION_CRYO if journey.plan.cryo else CONDITION_FRESH_COLD
        harvested = call(
            station.Harvest,
            pb.HarvestRequest(
                operator=gmp.operator,
                batch_id=journey.batch_id,
                product_unit_count=1,
                hold_condition=hold,
                harvested_at=timestamp(times.batch_ended),
            ),
        )
        journey.product_dins = list(harvested.product_dins)
    return True
