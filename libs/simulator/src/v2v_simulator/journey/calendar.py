"""A patient's clinical calendar: when each step of the journey happened, on a timeline of
days and weeks that ended before the simulation runs.

The simulator enters every step with these clinical times (the services record, apart, when
they were told), so the KPIs and the audit report show programme-like durations: a few days
from enrolment to apheresis, 7-12 days of manufacturing, a day of QC for a fresh product and
two weeks for a cryopreserved one, a fresh apheresis relayed for 30 hours by three couriers
when the plan says so. Built forward from the enrolment, then shifted so the journey's last
step lies `rest` before `now` (patients finish over the last few months).

The windows the services judge are kept with margin: a fresh apheresis starts manufacturing
within 48 h of the collection's end, a fresh product is infused within 72 h of its harvest,
a thawed product within 30 minutes. `plan_calendar` is pure: the same plan and `now` give the
same calendar.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any

from v2v_simulator.scenarios import PatientPlan

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
RELAY_HOURS = 30.0
RELAY_COURIERS = 3
LATEST_END = timedelta(hours=1)
"""The last step of every journey lies at least this long before `now`."""
EARLIEST_END = timedelta(days=90)
PRE_RELEASE_TESTS = 6
POST_RELEASE_TESTS = 3


@dataclass(frozen=True)
class Transport:
    created: datetime
    picked_up: datetime  # the first courier takes custody
    relays: tuple[datetime, ...]  # a courier hands over to the next (the next scans first)
    arrived: datetime  # the last courier offers the shipment to the destination
    readings: tuple[datetime, ...]  # the data logger's readings in transit
    received: datetime
    inspected: datetime


@dataclass(frozen=True)
class Cycle:
    """One apheresis and the batch made from it (failed, or harvested)."""

    booked: datetime  # the manufacturing slot (on the day the batch starts) was booked
    collection_started: datetime
    collection_ended: datetime
    labelled: datetime
    verified: datetime  # both staff scanned the labels (a minute apart per bag, before this)
    frozen: datetime  # cryopreserved bags only
    packaged: datetime
    shipment: Transport
    received_at_gmp: datetime
    batch_started: datetime
    steps: tuple[datetime, ...]
    in_process_qc: datetime
    batch_ended: datetime  # harvested, or failed


@dataclass(frozen=True)
class Release:
    results: tuple[datetime, ...]  # pre-release results (and post-release for cryo)
    decided: datetime  # certification, or the QP's OOS justification
    accepted: datetime  # the treating physician's acceptance of an OOS release


@dataclass(frozen=True)
class Ward:
    shipment: Transport
    received: datetime
    stored: datetime
    thawed: datetime  # cryopreserved product only
    scans: tuple[datetime, datetime]
    infused: datetime
    adverse_onset: datetime


@dataclass(frozen=True)
class FollowUp:
    """A fresh product's slow tests after its infusion, and the final certification."""

    results: tuple[datetime, ...]
    certified: datetime


@dataclass(frozen=True)
class Calendar:
    enrolled: datetime
    cycles: tuple[Cycle, ...]
    release: Release
    ward: Ward
    follow_up: FollowUp

    @property
    def harvested(self) -> datetime:
        return self.cycles[-1].batch_ended

    def slot_date(self, cycle: int) -> str:
        """The manufacturing slot of apheresis `cycle` (from 1): the day its batch starts."""
        return self.cycles[cycle - 1].batch_started.date().isoformat()

    @property
    def ends(self) -> datetime:
        return max(moments(self))

    def shifted(self, by: timedelta) -> Calendar:
        """Every time `by` later."""
        moved: Calendar = _shift(self, by)
        return moved


def plan_calendar(plan: PatientPlan, now: datetime) -> Calendar:
    """The calendar of `plan`'s journey, ending between `LATEST_END` and `EARLIEST_END`
    before `now`."""
    rng = random.Random(f"v2v-calendar:{plan.number}")
    draft = _Drafting(plan, rng).calendar(now)
    ends_at = now - LATEST_END - (EARLIEST_END - LATEST_END) * rng.random()
    return draft.shifted(ends_at - draft.ends)


class _Drafting:
    def __init__(self, plan: PatientPlan, rng: random.Random) -> None:
        self.plan, self.rng = plan, rng

    def hours(self, low: float, high: float) -> timedelta:
        return timedelta(minutes=round(60 * self.rng.uniform(low, high)))

    def calendar(self, start: datetime) -> Calendar:
        enrolled = start
        cycles: list[Cycle] = []
        decided, wait = enrolled, self.hours(2 * 24, 9 * 24)
        count = 2 if self.plan.second_apheresis else 1
        for number in range(1, count + 1):
            cycle = self.cycle(decided, wait, fails=number < count, relayed=self.plan.long_relay)
            cycles.append(cycle)
            decided, wait = cycle.batch_ended, self.hours(3 * 24, 7 * 24)
        release = self.release(cycles[-1].batch_ended)
        ward = self.ward(release)
        follow_up = self.follow_up(cycles[-1].batch_ended)
        return Calendar(enrolled, tuple(cycles), release, ward, follow_up)

    def cycle(self, decided: datetime, wait: timedelta, fails: bool, relayed: bool) -> Cycle:
        """An apheresis `wait` after it was `decided` (enrolment, or the failed batch)."""
        collection_started = decided + wait
        ended = collection_started + self.hours(3, 5)
        labelled = ended + 10 * MIN
        verified = labelled + 10 * MIN
        frozen = ended + 30 * MIN
        packed = frozen + 30 * MIN if self.plan.cryo else verified + 10 * MIN
        if self.plan.cryo:
            transit = self.hours(18, 36)
        else:
            transit = RELAY_HOURS * H if relayed else self.hours(2, 6)
        shipment = self.transport(packed + 20 * MIN, transit, relayed)
        received = shipment.inspected + 20 * MIN
        started = received + (self.hours(24, 72) if self.plan.cryo else self.hours(1, 3))
        ends = started + (self.hours(4 * 24, 6 * 24) if fails else self.hours(7 * 24, 12 * 24))
        steps = [started + H, started + DAY, started + 2 * DAY]
        if not fails:
            steps += [started + 3 * DAY, ends - 6 * H]
        return Cycle(
            booked=decided + 2 * H,
            collection_started=collection_started,
            collection_ended=ended,
            labelled=labelled,
            verified=verified,
            frozen=frozen,
            packaged=packed,
            shipment=shipment,
            received_at_gmp=received,
            batch_started=started,
            steps=tuple(steps),
            in_process_qc=ends - 3 * H,
            batch_ended=ends,
        )

    def transport(self, created: datetime, transit: timedelta, relayed: bool) -> Transport:
        picked_up = created + 40 * MIN
        arrived = picked_up + transit
        legs = RELAY_COURIERS if relayed else 1
        relays = tuple(picked_up + transit * n / legs for n in range(1, legs))
        readings = tuple(picked_up + transit * (n + 1) / 5 for n in range(4))
        received = arrived + 10 * MIN
        inspected = received + 20 * MIN
        return Transport(created, picked_up, relays, arrived, readings, received, inspected)

    def release(self, harvested: datetime) -> Release:
        if self.plan.cryo:
            pre = [harvested + self.hours(24, 72) for _ in range(PRE_RELEASE_TESTS)]
            post = [harvested + 7 * DAY, harvested + 9 * DAY, harvested + 14 * DAY]
            results = sorted(pre) + post
        else:
            results = [harvested + (2 + 2.5 * n) * H for n in range(PRE_RELEASE_TESTS)]
        decided = results[-1] + self.hours(1, 3)
        accepted = decided + self.hours(2, 4) if self.plan.oos else decided
        return Release(tuple(results), decided, accepted)

    def ward(self, release: Release) -> Ward:
        released = max(release.decided, release.accepted)
        wait = self.hours(24, 7 * 24) if self.plan.cryo else self.hours(1, 2)
        transit = self.hours(4, 24) if self.plan.cryo else self.hours(2, 5)
        shipment = self.transport(released + wait, transit, relayed=False)
        received = shipment.inspected + 5 * MIN
        stored = received + 15 * MIN
        if self.plan.cryo:
            thawed = stored + self.hours(24, 4 * 24)
            first_scan = thawed + 10 * MIN
        else:
            thawed = stored
            first_scan = stored + self.hours(2, 8)
        infused = first_scan + 8 * MIN
        return Ward(
            shipment=shipment,
            received=received,
            stored=stored,
            thawed=thawed,
            scans=(first_scan, first_scan + 2 * MIN),
            infused=infused,
            adverse_onset=infused + self.hours(12, 72),
        )

    def follow_up(self, harvested: datetime) -> FollowUp:
        results = (harvested + 7 * DAY, harvested + 9 * DAY, harvested + 14 * DAY)
        return FollowUp(results, results[-1] + 2 * H)


def moments(value: Any) -> list[datetime]:
    """Every time in `value` (a calendar or one of its parts)."""
    if isinstance(value, datetime):
        return [value]
    if isinstance(value, tuple):
        return [moment for item in value for moment in moments(item)]
    return [moment for f in fields(value) for moment in moments(getattr(value, f.name))]


def _shift(value: Any, by: timedelta) -> Any:
    if isinstance(value, datetime):
        return value + by
    if isinstance(value, tuple):
        return tuple(_shift(item, by) for item in value)
    return replace(value, **{f.name: _shift(getattr(value, f.name), by) for f in fields(value)})
