"""Patient plans: seeded, every special case given to some patient, distinct patients when
there are enough, sterility failures only on fresh product."""

from __future__ import annotations

from collections import Counter

import pytest

from v2v_simulator.consortium import Consortium
from v2v_simulator.scenarios import SPECIALS, plan_patients

CONSORTIUM = Consortium.sized()


def test_the_same_seed_gives_the_same_plans_and_another_seed_other_plans() -> None:
    assert plan_patients(CONSORTIUM, 30, seed=7) == plan_patients(CONSORTIUM, 30, seed=7)
    assert plan_patients(CONSORTIUM, 30, seed=7) != plan_patients(CONSORTIUM, 30, seed=8)


@pytest.mark.parametrize("count", [1, 2, 5, 6, 30])
def test_every_special_case_happens_at_least_once(count: int) -> None:
    plans = plan_patients(CONSORTIUM, count, seed=3)
    seen = Counter(name for plan in plans for name in plan.specials)
    assert set(seen) == set(SPECIALS)
    assert len(plans) == count


def test_with_enough_patients_the_planned_special_cases_fall_on_different_patients() -> None:
    for seed in range(20):
        plans = plan_patients(CONSORTIUM, 30, seed=seed)
        holders = {name: [p.number for p in plans if name in p.specials] for name in SPECIALS}
        first_holders = {numbers[0] for numbers in holders.values()}
        assert all(holders.values())
        assert len(first_holders) >= 3, holders


def test_sterility_failures_are_fresh_product_and_both_flows_occur() -> None:
    plans = plan_patients(CONSORTIUM, 30, seed=11)
    assert all(not p.cryo for p in plans if p.sterility_failure)
    assert {p.flow for p in plans} == {"fresh", "cryo"}
    assert {p.hospital.site_id for p in plans} == {"HOSP-A", "HOSP-B"}


def test_a_later_run_numbers_its_patients_after_the_earlier_ones() -> None:
    plans = plan_patients(CONSORTIUM, 4, seed=7, first_number=31)
    assert [p.number for p in plans] == [31, 32, 33, 34]
    assert "patient 31 (" in plans[0].label


def test_no_patients_no_plans() -> None:
    assert plan_patients(CONSORTIUM, 0, seed=1) == []
