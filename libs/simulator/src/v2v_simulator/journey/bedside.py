"""The treating site: once it knows the release (from Kafka), the product is shipped to it,
received, stored (and thawed when cryopreserved), verified at the bedside by two nurses, each
re-authenticating with their own password (a scan with another patient's wristband is
refused), infused with the second nurse as the (re-authenticated) witness, and followed up
(adverse events; acknowledgement of a post-release failure by the treating physician)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from v2v.common.v1.common_pb2 import CONDITION_CRYO, CONDITION_FRESH_COLD
from v2v.infusion.v1 import infusion_service_pb2 as pb
from v2v_platform.ids import issue_coi
from v2v_platform.proto_values import timestamp
from v2v_simulator.clients import call
from v2v_simulator.journey.context import Journey, Unexpected, still_unknown
from v2v_simulator.journey.release import signature
from v2v_simulator.journey.shipping import Leg, ship

RELEASING = ("provisional", "final", "oos-accepted")


def deliver_product(journey: Journey) -> None:
    plan = journey.plan
    ward = journey.world.clients.infusion(plan.hospital.site_id)
    din = journey.product_dins[0]

    def released() -> bool:
        try:
            unit = call(ward.GetProductUnit, pb.GetProductUnitRequest(din=din)).unit
        except grpc.RpcError as error:
            if still_unknown(error):
                return False
            raise
        return unit.release_status in RELEASING

    with journey.step("release known at the treating site"):
        journey.poll(released, "the release to reach the treating site")
    gmp = plan.hospital.gmp
    _, gmp_department, ward_department = plan.hospital.departments
    leg = Leg(
        what="product",
        origin=gmp.site_id,
        origin_operator=gmp.operator,
        destination=plan.hospital.site_id,
        destination_operator=plan.hospital.nurses[0],
        condition=CONDITION_CRYO if plan.cryo else CONDITION_FRESH_COLD,
        dins=[din],
        origin_department=gmp_department,
        destination_department=ward_department,
    )
    ship(journey, leg, journey.calendar.ward.shipment)


def infuse(journey: Journey) -> None:
    plan = journey.plan
    hospital = plan.hospital
    ward = journey.world.clients.infusion(hospital.site_id)
    first, second = hospital.nurses
    din = journey.product_dins[0]
    times = journey.calendar.ward
    with journey.step("receive product at the ward"):
        receipt = pb.ReceiveProductRequest(
            operator=first, din=din, received_at=timestamp(times.received)
        )
        call(ward.ReceiveProduct, receipt)
    with journey.step("store product"):
        place = "LN2 dewar 2, rack B" if plan.cryo else "pharmacy fridge 1"
        request = pb.StoreProductRequest(
            operator=first, din=din, location=place, stored_at=timestamp(times.stored)
        )
        call(ward.StoreProduct, request)
    if plan.cryo:
        with journey.step("start thaw"):
            thaw = pb.StartThawRequest(
                operator=first, din=din, thaw_started_at=timestamp(times.thawed)
            )
            call(ward.StartThaw, thaw)
    if plan.wrong_bag:
        refuse_wrong_wristband(journey, ward, din, times.scans[0] - timedelta(minutes=1))
    nurses = ((first, "first-scan-recorded"), (second, "verified"))
    for (nurse, outcome), scanned_at in zip(nurses, times.scans, strict=True):
        with journey.step("bedside scan"):
            bedside = pb.ScanAtBedsideRequest(
                operator=nurse,
                wristband_coi=journey.coi,
                din=din,
                scanned_at=timestamp(scanned_at),
                signature=hospital.reauthentication(nurse, "verification"),
            )
            scanned = call(ward.ScanAtBedside, bedside)
            if scanned.outcome != outcome:
                raise Unexpected(f"bedside scan outcome {scanned.outcome!r}, expected {outcome!r}")
    with journey.step("administer infusion"):
        infusion = pb.AdministerInfusionRequest(
            operator=first,
            din=din,
            administered_at=timestamp(times.infused),
            dose_car_cells_per_kg=1.0e6,
            volume_ml=68.0,
            witnessed_by=second,
            witness_signature=hospital.reauthentication(second, "witness"),
        )
        status = call(ward.AdministerInfusion, infusion).unit.status
        if status != "infused":
            raise Unexpected(f"unit status {status!r} after the infusion")
    if plan.adverse_event_grade:
        with journey.step("record adverse event"):
            event = pb.RecordAdverseEventRequest(
                operator=first,
                din=din,
                kind="crs",
                grade=plan.adverse_event_grade,
                onset_at=timestamp(times.adverse_onset),
                notes="fever on day 1; tocilizumab given" if plan.adverse_event_grade > 1 else "",
            )
            call(ward.RecordAdverseEvent, event)


def refuse_wrong_wristband(journey: Journey, ward: Any, din: str, at: datetime) -> None:
    """Another patient's wristband with this bag: the scan must be refused (and recorded)."""
    hospital = journey.plan.hospital
    other = (
        journey.world.another_patient(journey.coi)
        or issue_coi(hospital.fin, date.today().year % 100, 999_999).value
    )
    nurse = hospital.nurses[0]
    request = pb.ScanAtBedsideRequest(
        operator=nurse,
        wristband_coi=other,
        din=din,
        scanned_at=timestamp(at),
        signature=hospital.reauthentication(nurse, "verification"),
    )
    with journey.step("bedside: wrong wristband refused"):
        try:
            call(ward.ScanAtBedside, request)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise
            return
        raise Unexpected(f"bag {din} was accepted for another patient's wristband {other}")


def acknowledge_failure(journey: Journey, failure_id: str) -> None:
    hospital = journey.plan.hospital
    ward = journey.world.clients.infusion(hospital.site_id)

    def alerted() -> bool:
        alerts = call(ward.ListAlerts, pb.ListAlertsRequest(unacknowledged_only=True)).alerts
        return any(alert.failure_id == failure_id for alert in alerts)

    with journey.step("post-release failure alert at the ward"):
        journey.poll(alerted, "the post-release failure alert at the treating site")
    with journey.step("physician acknowledges the failure"):
        doctor = hospital.physician
        acknowledged = call(
            ward.AcknowledgeAlert,
            pb.AcknowledgeAlertRequest(
                operator=doctor,
                failure_id=failure_id,
                decision="patient informed; blood cultures taken, empirical antibiotics started",
                signature=signature(doctor, "responsibility"),
            ),
        ).alert
        if not acknowledged.acknowledged:
            raise Unexpected(f"alert {failure_id} is still unacknowledged")
