"""The treating site of a synthetic journey: receipt, storage, thaw (cryo), two-person
bedside verification (rarely after a refused scan), infusion and adverse events."""

from __future__ import annotations

from datetime import datetime, timedelta

from v2v.common.v1 import common_pb2
from v2v.infusion.events.v1 import events_pb2 as infusion
from v2v_testkit.synthetic.consortium import CRYO, Person, stamp
from v2v_testkit.synthetic.manufacturing import Made
from v2v_testkit.synthetic.patient import Journey
from v2v_testkit.synthetic.release import Released


def operator(person: Person) -> common_pb2.Operator:
    return common_pb2.Operator(user_id=person[0], printed_name=person[1])


def infuse(journey: Journey, made: Made, released: Released) -> None:
    site, din = journey.treating_site, made.product_dins[0]
    unit = ("ProductAtSite", journey.uid("product-at-site", site, din))
    first, second = journey.person(site, "infusion", 0), journey.person(site, "infusion", 1)
    physician = journey.person(site, "infusion", 2)
    journey.advance(10, 30)
    received = infusion.ProductReceived(
        coi=journey.coi,
        din=din,
        treating_site_id=site,
        batch_id=made.batch_id,
        condition=made.hold,
        received_at=stamp(journey.now),
    )
    journey.add("infusion", unit, received, site, first)
    journey.advance(5, 20)
    stored = infusion.ProductStored(
        coi=journey.coi,
        din=din,
        location="LN2-DEWAR-3" if made.hold == CRYO else "FRIDGE-2",
        condition=made.hold,
        stored_at=stamp(journey.now),
    )
    journey.add("infusion", unit, stored, site, first)
    rules = journey.rules
    infuse_by = released.decided_at + rules.fresh_product
    if made.hold == CRYO:
        journey.advance(24 * 60, 5 * 24 * 60)
        infuse_by = journey.now + rules.post_thaw
        thawed = infusion.ThawStarted(
            coi=journey.coi,
            din=din,
            thaw_started_at=stamp(journey.now),
            infuse_by=stamp(infuse_by),
            window_minutes=rules.post_thaw_minutes,
            protocol_rules=rules.tag,
        )
        journey.add("infusion", unit, thawed, site, first)
        journey.advance(2, 6)
    else:
        journey.advance(60, 8 * 60)
    verify_at_bedside(journey, unit, din, released, infuse_by)
    journey.advance(3, 10)
    administered = infusion.InfusionAdministered(
        coi=journey.coi,
        din=din,
        administered_at=stamp(journey.now),
        dose_car_cells_per_kg=round(journey.rng.uniform(0.8, 2.5) * 1e6, 0),
        volume_ml=round(journey.rng.uniform(20, 90), 1),
        administered_by=operator(physician),
        witnessed_by=operator(second),
        release_basis=released.basis,
    )
    journey.add("infusion", unit, administered, site, physician)
    record_adverse_events(journey, unit, din, physician)


def verify_at_bedside(
    journey: Journey, unit: tuple[str, str], din: str, released: Released, infuse_by: datetime
) -> None:
    site = journey.treating_site
    first, second = journey.person(site, "infusion", 0), journey.person(site, "infusion", 1)
    if journey.chance(0.03):
        other = f"{journey.coi[:-1]}{'Z' if journey.coi[-1] != 'Z' else 'Y'}"
        mismatch = infusion.BedsideMismatchRecorded(
            coi=journey.coi,
            scanned_din=din,
            wristband_coi=other,
            reason_code="coi-mismatch",
            explanation=f"unit {din} belongs to {journey.coi}, the wristband reads {other}",
            scanned_at=stamp(journey.now),
        )
        aggregate = ("BedsideMismatch", journey.uid("bedside-mismatch", din))
        journey.add("infusion", aggregate, mismatch, site, first, occurred_at=journey.now)
        journey.advance(1, 4)
    scanned = infusion.BedsideScanRecorded(
        coi=journey.coi, din=din, wristband_coi=journey.coi, scanned_at=stamp(journey.now)
    )
    journey.add("infusion", unit, scanned, site, first, occurred_at=journey.now)
    journey.advance(1, 4)
    verified = infusion.BedsideVerified(
        coi=journey.coi,
        din=din,
        first_user=operator(first),
        second_user=operator(second),
        verified_at=stamp(journey.now),
        release_basis=released.basis,
        infuse_by=stamp(infuse_by),
        protocol_rules=journey.rules.tag,
    )
    journey.add("infusion", unit, verified, site, second, occurred_at=journey.now)


def record_adverse_events(journey: Journey, unit: tuple[str, str], din: str, by: Person) -> None:
    infused_at = journey.now
    for kind, probability, worst in (("crs", 0.4, 3), ("icans", 0.1, 4)):
        if journey.chance(probability):
            onset = infused_at + timedelta(hours=journey.rng.uniform(12, 120))
            journey.now = max(journey.now, onset + timedelta(minutes=30))
            event = infusion.AdverseEventRecorded(
                coi=journey.coi,
                din=din,
                kind=kind,
                grade=journey.rng.randint(1, worst),
                onset_at=stamp(onset),
                notes="managed per protocol",
            )
            journey.add("infusion", unit, event, journey.treating_site, by)
