"""One patient from enrolment to infusion and follow-up, stage by stage. A planned second
apheresis means the first batch fails in-process QC and the cycle starts again."""

from __future__ import annotations

from v2v.common.v1.common_pb2 import CONDITION_CRYO, CONDITION_FRESH_COLD
from v2v_simulator.journey.bedside import acknowledge_failure, deliver_product, infuse
from v2v_simulator.journey.collection import collect, enrol
from v2v_simulator.journey.context import Journey
from v2v_simulator.journey.manufacturing import manufacture
from v2v_simulator.journey.release import complete_fresh_release, release
from v2v_simulator.journey.shipping import Leg, ship


def run_journey(journey: Journey) -> Journey:
    plan = journey.plan
    enrol(journey)
    cycles = 2 if plan.second_apheresis else 1
    for cycle in range(1, cycles + 1):
        collect(journey, cycle)
        times = journey.calendar.cycles[cycle - 1].shipment
        leg = apheresis_leg(journey, excursion=plan.excursion and cycle == cycles)
        ship(journey, leg, times)
        manufacture(journey, cycle, fails=cycle < cycles)
    release(journey)
    deliver_product(journey)
    infuse(journey)
    if not plan.cryo:
        failure_id = complete_fresh_release(journey)
        if failure_id:
            acknowledge_failure(journey, failure_id)
    return journey


def apheresis_leg(journey: Journey, excursion: bool) -> Leg:
    hospital = journey.plan.hospital
    collection, gmp, _ = hospital.departments
    return Leg(
        what="apheresis",
        origin=hospital.site_id,
        origin_operator=hospital.nurses[0],
        destination=hospital.gmp.site_id,
        destination_operator=hospital.gmp.operator,
        condition=CONDITION_CRYO if journey.plan.cryo else CONDITION_FRESH_COLD,
        dins=list(journey.apheresis_dins),
        excursion=excursion,
        origin_department=collection,
        destination_department=gmp,
    )
