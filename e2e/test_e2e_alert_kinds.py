"""Alerts that name the real problem (issue 14 item 4), black box, on PostgreSQL and Kafka:

- a batch started from the bags of two patients is refused AND recorded on both chains
  (`BatchInputsMismatchRecorded`), each of which shows an `identity-mismatch` (I2);
- refused bedside scans raise the kind of their reason: the same nurse scanning twice a
  `two-person-check`, a scan after the post-thaw window a `stability-window-breach`, never an
  `identity-mismatch`.

The patients are driven with the simulator's steps and clinical calendars, and stopped where
the refusal happens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
import pytest

from v2v.infusion.v1 import infusion_service_pb2 as infusion_pb
from v2v.manufacturing.v1 import manufacturing_service_pb2 as mfg_pb
from v2v.projection.v1 import projection_service_pb2 as projection_pb
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.bedside import deliver_product
from v2v_simulator.journey.calendar import plan_calendar
from v2v_simulator.journey.collection import collect, enrol
from v2v_simulator.journey.context import Journey
from v2v_simulator.journey.flow import apheresis_leg
from v2v_simulator.journey.manufacturing import manufacture
from v2v_simulator.journey.release import release
from v2v_simulator.journey.shipping import ship
from v2v_simulator.runner import open_slots
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import PatientPlan

pytestmark = pytest.mark.integration


def journeys(running: RunningConsortium, *plans: PatientPlan) -> list[Journey]:
    now = datetime.now(UTC)
    made = [Journey(plan, running.world, plan_calendar(plan, now)) for plan in plans]
    open_slots(running.world, made)
    return made


def to_gmp(journey: Journey) -> None:
    """Enrolment, apheresis, labels, packaging and the shipment to the GMP site."""
    enrol(journey)
    collect(journey, 1)
    ship(journey, apheresis_leg(journey, excursion=False), journey.calendar.cycles[0].shipment)


def alert_kinds(journey: Journey, wanted: set[str]) -> set[str]:
    """The chain's alert kinds once they include `wanted` (polled to the fact deadline)."""
    projection = journey.world.clients.projection()
    request = projection_pb.GetChainRequest(coi=journey.coi)

    def kinds() -> set[str] | None:
        try:
            chain = call(projection.GetChain, request).chain
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        found = {alert.kind for alert in chain.alerts}
        return found if wanted <= found else None

    return journey.poll(kinds, f"alerts {sorted(wanted)} on {journey.coi}")


def refused(attempt: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        attempt()
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION, error.value.details()
    return error.value


def test_a_batch_of_two_patients_bags_is_recorded_on_both_chains(
    consortium_system: RunningConsortium,
) -> None:
    running = consortium_system
    first, second = running.system.consortium.hospitals
    a, b = journeys(
        running,
        PatientPlan(1, first, cryo=True, apheresis_bags=1),
        PatientPlan(2, second, cryo=True, apheresis_bags=1),
    )
    for journey in (a, b):
        to_gmp(journey)
    gmp = first.gmp
    station = running.clients.manufacturing(gmp.site_id)
    for journey in (a, b):
        times = journey.calendar.cycles[0]
        receipt = mfg_pb.ReceiveUnitRequest(
            operator=gmp.operator,
            scanned_din=journey.apheresis_dins[0],
            scanned_coi=journey.coi,
            received_at=timestamp(times.received_at_gmp),
        )
        journey.once_known(partial(call, station.ReceiveUnit, receipt), "the bag at GMP")
    started = max(j.calendar.cycles[0].batch_started for j in (a, b))
    mixed = mfg_pb.StartBatchRequest(
        operator=gmp.operator,
        input_dins=[*a.apheresis_dins, *b.apheresis_dins],
        started_at=timestamp(started),
    )
    error = refused(lambda: call(station.StartBatch, mixed))
    assert a.coi in (error.details() or "") and b.coi in (error.details() or "")
    for journey in (a, b):
        assert alert_kinds(journey, {"identity-mismatch"}) == {"identity-mismatch"}


def test_refused_bedside_scans_raise_the_alert_of_their_reason(
    consortium_system: RunningConsortium,
) -> None:
    running = consortium_system
    hospital = running.system.consortium.hospitals[0]
    [journey] = journeys(running, PatientPlan(3, hospital, cryo=True, apheresis_bags=1))
    to_gmp(journey)
    manufacture(journey, 1, fails=False)
    release(journey)
    deliver_product(journey)
    ward = running.clients.infusion(hospital.site_id)
    times, din = journey.calendar.ward, journey.product_dins[0]
    nurse, other_nurse = hospital.nurses
    call(
        ward.ReceiveProduct,
        infusion_pb.ReceiveProductRequest(
            operator=nurse, din=din, received_at=timestamp(times.received)
        ),
    )
    store = infusion_pb.StoreProductRequest(
        operator=nurse, din=din, location="LN2 dewar 2", stored_at=timestamp(times.stored)
    )
    call(ward.StoreProduct, store)
    thaw = infusion_pb.StartThawRequest(
        operator=nurse, din=din, thaw_started_at=timestamp(times.thawed)
    )
    call(ward.StartThaw, thaw)

    def scan(who: Any, minutes: int) -> Any:
        request = infusion_pb.ScanAtBedsideRequest(
            operator=who,
            wristband_coi=journey.coi,
            din=din,
            scanned_at=timestamp(times.thawed + timedelta(minutes=minutes)),
            signature=hospital.reauthentication(who, "verification"),
        )
        return call(ward.ScanAtBedside, request)

    assert scan(nurse, 5).outcome == "first-scan-recorded"
    assert "same-user" in (refused(lambda: scan(nurse, 6)).details() or "")
    assert "window-expired" in (refused(lambda: scan(other_nurse, 45)).details() or "")
    kinds = alert_kinds(journey, {"two-person-check", "stability-window-breach"})
    assert kinds == {"two-person-check", "stability-window-breach"}
