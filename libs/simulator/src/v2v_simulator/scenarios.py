"""What happens to each patient, decided up front from a seeded RNG: the hospital, fresh or
cryopreserved flow, how many apheresis bags, and the special cases. Every special case the
demo must show is given to at least one patient (distinct patients when there are enough);
the others also occur at random, rarely."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from v2v_simulator.consortium import Consortium, Hospital

# A special case -> the probability it also happens to any other patient.
SPECIALS = {
    "second_apheresis": 0.1,  # the first batch fails in-process QC: a second collection
    "oos": 0.06,  # a pre-release result out of specification: exceptional release
    "sterility_failure": 0.03,  # sterility positive after provisional release
    "excursion": 0.05,  # the apheresis shipment's logger reads out of range
    "wrong_bag": 0.03,  # another patient's wristband scanned with the bag at the bedside
    "long_relay": 0.03,  # a fresh apheresis relayed for 30 hours by three couriers
}
# The alerts the projection must show for a special case (the others raise none).
ALERTS_OF_SPECIALS = {"wrong_bag": "identity-mismatch", "excursion": "temperature-excursion"}
FRESH_ONLY = ("sterility_failure", "long_relay")
"""Provisional release is for fresh product only; the relay carries a fresh apheresis."""
CRYO_SHARE = 0.4
ADVERSE_EVENT_SHARE = 0.3


@dataclass(frozen=True)
class PatientPlan:
    number: int
    hospital: Hospital
    cryo: bool
    apheresis_bags: int
    second_apheresis: bool = False
    oos: bool = False
    sterility_failure: bool = False
    excursion: bool = False
    wrong_bag: bool = False
    long_relay: bool = False
    adverse_event_grade: int = 0  # CRS grade after infusion (0: none)

    @property
    def label(self) -> str:
        return f"patient {self.number} ({self.hospital.site_id}, {self.flow})"

    @property
    def flow(self) -> str:
        return "cryo" if self.cryo else "fresh"

    @property
    def specials(self) -> list[str]:
        return [name for name in SPECIALS if getattr(self, name)]

    @property
    def expected_alerts(self) -> set[str]:
        """The kinds of alert this patient's chain must end with."""
        return {ALERTS_OF_SPECIALS[name] for name in self.specials if name in ALERTS_OF_SPECIALS}


def plan_patients(
    consortium: Consortium, count: int, seed: int, first_number: int = 1
) -> list[PatientPlan]:
    """`count` plans numbered from `first_number`; the same arguments give the same plans."""
    rng = random.Random(f"v2v-simulator:{seed}:{first_number}")
    plans = [_ordinary(consortium, first_number + n, rng) for n in range(count)]
    if not plans:
        return plans
    order = rng.sample(range(count), count)
    for index, name in enumerate(SPECIALS):
        chosen = order[index % count]
        plans[chosen] = _with(plans[chosen], name)
    for n, plan in enumerate(plans):
        for name, chance in SPECIALS.items():
            if rng.random() < chance:
                plans[n] = plan = _with(plan, name)
    return plans


def _ordinary(consortium: Consortium, number: int, rng: random.Random) -> PatientPlan:
    adverse = rng.choice((1, 1, 2, 3)) if rng.random() < ADVERSE_EVENT_SHARE else 0
    return PatientPlan(
        number=number,
        hospital=rng.choice(consortium.hospitals),
        cryo=rng.random() < CRYO_SHARE,
        apheresis_bags=rng.choice((1, 1, 2)),
        adverse_event_grade=adverse,
    )


def _with(plan: PatientPlan, special: str) -> PatientPlan:
    flag: dict[str, Any] = {special: True}
    changed = replace(plan, **flag)
    if special in FRESH_ONLY:
        changed = replace(changed, cryo=False)
    return changed
