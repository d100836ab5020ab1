"""The clinical calendar of a simulated patient: every step in the order the journey enters
it, in the past, with programme-like durations, inside the windows the services judge."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from v2v_simulator.consortium import Consortium
from v2v_simulator.journey.calendar import (
    EARLIEST_END,
    LATEST_END,
    RELAY_HOURS,
    Calendar,
    Transport,
    moments,
    plan_calendar,
)
from v2v_simulator.scenarios import PatientPlan, plan_patients

NOW = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
PLANS = [plan for seed in range(4) for plan in plan_patients(Consortium.sized(3, 2), 60, seed=seed)]


def transport_order(times: Transport) -> list[datetime]:
    return [
        times.created,
        times.picked_up,
        *times.relays,
        times.arrived,
        times.received,
        times.inspected,
    ]


def journey_order(plan: PatientPlan, calendar: Calendar) -> list[datetime]:
    """The clinical times in the order the simulator enters the steps."""
    order = [calendar.enrolled]
    for cycle in calendar.cycles:
        order += [cycle.booked, cycle.collection_started, cycle.collection_ended, cycle.labelled]
        order += [cycle.verified]
        order += [cycle.frozen] if plan.cryo else []
        order += [cycle.packaged]
        order += transport_order(cycle.shipment)
        order += [cycle.received_at_gmp, cycle.batch_started, *cycle.steps]
        order += [cycle.in_process_qc, cycle.batch_ended]
    release = calendar.release
    order += [*release.results, release.decided]
    order += [release.accepted] if plan.oos else []
    ward = calendar.ward
    order += [*transport_order(ward.shipment), ward.received, ward.stored]
    order += [ward.thawed] if plan.cryo else []
    order += [*ward.scans, ward.infused]
    if not plan.cryo:
        order += [*calendar.follow_up.results, calendar.follow_up.certified]
    return order


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: f"p{plan.number}-{plan.flow}")
def test_every_step_follows_the_one_before_and_lies_in_the_past(plan: PatientPlan) -> None:
    calendar = plan_calendar(plan, NOW)
    order = journey_order(plan, calendar)
    assert all(a < b for a, b in itertools.pairwise(order)), order
    assert calendar.ward.adverse_onset > calendar.ward.infused
    assert NOW - EARLIEST_END <= calendar.ends <= NOW - LATEST_END
    assert calendar.ends == max(moments(calendar))


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: f"p{plan.number}-{plan.flow}")
def test_the_windows_the_services_judge_hold_with_margin(plan: PatientPlan) -> None:
    calendar = plan_calendar(plan, NOW)
    for cycle in calendar.cycles:
        if not plan.cryo:  # fresh apheresis: 48 h from the collection's end to the start
            assert cycle.batch_started - cycle.collection_ended <= timedelta(hours=40)
        assert len(cycle.shipment.readings) == 4
        assert cycle.shipment.picked_up < min(cycle.shipment.readings)
        assert max(cycle.shipment.readings) <= cycle.shipment.arrived
    ward = calendar.ward
    if plan.cryo:  # 30 minutes after the thaw
        assert ward.infused - ward.thawed <= timedelta(minutes=25)
    else:  # fresh product: 72 h from the harvest
        assert ward.infused - calendar.harvested <= timedelta(hours=60)


@pytest.mark.parametrize("plan", PLANS, ids=lambda plan: f"p{plan.number}-{plan.flow}")
def test_durations_are_those_of_point_of_care_programmes(plan: PatientPlan) -> None:
    calendar = plan_calendar(plan, NOW)
    first, last = calendar.cycles[0], calendar.cycles[-1]
    assert timedelta(days=2) <= first.collection_started - calendar.enrolled <= timedelta(days=9)
    assert timedelta(days=7) <= last.batch_ended - last.batch_started <= timedelta(days=12)
    vein_to_vein = calendar.ward.infused - first.collection_ended
    assert timedelta(days=8) <= vein_to_vein <= timedelta(days=60)
    assert len(calendar.cycles) == (2 if plan.second_apheresis else 1)
    if plan.second_apheresis:  # the failed batch ends days before the second collection
        assert last.collection_started - first.batch_ended >= timedelta(days=3)
        assert len(first.steps) == 3 and len(last.steps) == 5


def test_a_relay_takes_thirty_hours_and_three_couriers() -> None:
    relayed = [plan for plan in PLANS if plan.long_relay]
    assert relayed and all(not plan.cryo for plan in relayed)
    for plan in relayed:
        shipment = plan_calendar(plan, NOW).cycles[0].shipment
        assert shipment.arrived - shipment.picked_up == timedelta(hours=RELAY_HOURS)
        assert len(shipment.relays) == 2
    ordinary = [plan for plan in PLANS if not plan.long_relay]
    assert all(not plan_calendar(plan, NOW).cycles[0].shipment.relays for plan in ordinary)


def test_the_same_plan_gives_the_same_calendar_and_slots_on_batch_start_days() -> None:
    plan = PLANS[0]
    calendar = plan_calendar(plan, NOW)
    assert plan_calendar(plan, NOW) == calendar
    assert calendar.slot_date(1) == calendar.cycles[0].batch_started.date().isoformat()
    assert all(cycle.booked.date() <= cycle.batch_started.date() for cycle in calendar.cycles)
    later = plan_calendar(plan, NOW + timedelta(days=1))
    assert later == calendar.shifted(timedelta(days=1))
