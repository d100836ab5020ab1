"""The chain tells the clinical truth (issue 14), black box: patients of a hospital and of an
in-house hospital (collection, GMP, QC and ward are departments of one site under one FIN)
driven through every service with the clinical times of a simulated calendar (days and weeks
in the past, entered now), on PostgreSQL and Kafka.

- One DIN, one patient: the in-house site's intake and manufacturing issue DINs under one FIN;
  no DIN is bound to two chains, none raises `identity-conflict`.
- Handoffs inside one site: the in-house bags pass collection -> GMP -> ward departments.
- Clinical time: each chain's vein-to-vein time and stage times are the calendar's, to the
  hundredth of an hour; a second-apheresis patient counts from the FIRST collection; a fresh
  apheresis relayed for 30 hours by three couriers is accepted (no window breach) and its
  custody shows the three couriers and the 30 hours.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from v2v.projection.v1 import projection_service_pb2 as pb
from v2v_simulator.clients import call
from v2v_simulator.journey.calendar import RELAY_HOURS, Calendar
from v2v_simulator.journey.context import Journey
from v2v_simulator.runner import run_journeys
from v2v_simulator.running import RunningConsortium
from v2v_simulator.scenarios import PatientPlan
from v2v_simulator.summary import settled

pytestmark = pytest.mark.integration
IN_HOUSE = "INH-1"


def hours(delta: timedelta) -> float:
    return delta.total_seconds() / 3600


def plans(running: RunningConsortium) -> list[PatientPlan]:
    hospital, in_house = running.system.consortium.hospitals
    assert in_house.site_id == IN_HOUSE
    return [
        PatientPlan(1, in_house, cryo=False, apheresis_bags=2, second_apheresis=True),
        PatientPlan(2, hospital, cryo=False, apheresis_bags=1, long_relay=True),
        PatientPlan(3, in_house, cryo=True, apheresis_bags=1),
        PatientPlan(4, hospital, cryo=True, apheresis_bags=2),
    ]


def stage(kpis: pb.ChainKpis, name: str) -> float:
    [found] = [s for s in kpis.stage_hours if s.stage == name]
    assert found.HasField("hours"), f"{name} not measured"
    return found.hours


def check_kpis(chain: pb.Chain, calendar: Calendar) -> None:
    kpis, first, last = chain.kpis, calendar.cycles[0], calendar.cycles[-1]
    vein_to_vein = hours(calendar.ward.infused - first.collection_ended)
    assert kpis.apheresis_to_infusion_hours == pytest.approx(vein_to_vein, abs=0.01)
    expected = {
        "enrolment_to_collection": first.collection_started - calendar.enrolled,
        "collection_to_manufacturing": last.batch_started - last.collection_ended,
        "manufacturing": last.batch_ended - last.batch_started,
        "release": max(calendar.release.decided, calendar.release.accepted) - last.batch_ended,
    }
    for name, delta in expected.items():
        assert stage(kpis, name) == pytest.approx(hours(delta), abs=0.01), name
    assert not kpis.excluded_intervals


def custodians(running: RunningConsortium, coi: str, kind: str) -> list[tuple[str, datetime]]:
    """(custodian, held from) of the chain's first unit of `kind`, in order."""
    timeline = call(
        running.clients.projection().GetCustodyTimeline, pb.GetCustodyTimelineRequest(coi=coi)
    )
    unit = next(unit for unit in timeline.units if unit.kind == kind)
    return [(c.custodian, c.held_from.ToDatetime()) for c in unit.custody]


def test_in_house_and_relayed_patients_in_clinical_time(
    in_house_consortium: RunningConsortium,
) -> None:
    running = in_house_consortium
    result = run_journeys(running.world, plans(running), show_progress=False)
    assert result.failure is None, f"{result.failure}\n{running.system.deaths()}"
    journeys: dict[int, Journey] = {j.plan.number: j for j in result.journeys}
    chains = settled(running.clients, result.journeys, timeout_s=120)
    assert {chain.stage for chain in chains.values()} == {"infused"}
    assert not [alert.kind for chain in chains.values() for alert in chain.alerts]

    for journey in journeys.values():
        check_kpis(chains[journey.coi], journey.calendar)

    # A second apheresis: vein-to-vein from the FIRST collection, days before the second.
    second = journeys[1]
    kpis = chains[second.coi].kpis
    assert kpis.second_apheresis and kpis.collections == 2
    since_last = hours(second.calendar.ward.infused - second.calendar.cycles[1].collection_ended)
    assert kpis.apheresis_to_infusion_hours > since_last + 3 * 24

    # One DIN, one patient: the in-house site's bags and products are distinct, under its FIN.
    owners: dict[str, str] = {}
    for coi, chain in chains.items():
        for unit in chain.units:
            assert owners.setdefault(unit.din, coi) == coi, f"{unit.din} on two chains"
    in_house_dins = [unit.din for j in (journeys[1], journeys[3]) for unit in chains[j.coi].units]
    assert len(in_house_dins) == 2 * 2 + 1 + 2  # bags of two cycles + one bag + two products
    assert all(din.startswith("I1234") for din in in_house_dins)

    # Handoffs inside one site: collection -> GMP for the bags, GMP -> ward for the product.
    in_house = journeys[3].coi
    collection, gmp, ward = (f"site:{IN_HOUSE}/{d}" for d in ("collection", "gmp", "ward"))
    bag = [custodian for custodian, _ in custodians(running, in_house, "apheresis")]
    assert bag[-1] == gmp and bag.index(collection) < bag.index(gmp), bag
    product = [custodian for custodian, _ in custodians(running, in_house, "product")]
    assert product[-1] == ward and product.index(gmp) < product.index(ward), product

    # A 30-hour fresh relay by three couriers, judged on when it happened: no breach.
    relayed = journeys[2]
    custody = custodians(running, relayed.coi, "apheresis")
    couriers = [(who, since) for who, since in custody if who.startswith("courier:")]
    assert len({who for who, _ in couriers}) == 3, custody
    arrived = next(since for who, since in custody if who == "site:GMP-1")
    assert hours(arrived - couriers[0][1]) >= RELAY_HOURS, custody
