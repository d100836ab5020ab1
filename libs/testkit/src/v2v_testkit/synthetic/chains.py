"""Synthetic consortium histories: valid patient journeys through all five contexts, as the
relays would publish them (one list of serialized, hash-chained, Ed25519-signed envelopes per
topic, in recording order), for tests, the audit tools and the benchmarks.

The same seed gives the same bytes: identifiers are uuid5 of the seed, keys are derived from
the seed, and every random choice comes from a per-patient `random.Random`. The seed varies
fresh/cryo, second apheresis, batch failures, OOS and rejected releases, post-release
failures (mostly acknowledged), temperature excursions, window breaches and refused scans.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid5

from v2v_platform.envelope.headers import topic_for
from v2v_platform.envelope.keys import KeyRing, SiteSigningKey
from v2v_platform.ids import issue_coi
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules
from v2v_testkit.synthetic.bedside import infuse
from v2v_testkit.synthetic.collection import Collected, book_slot, collect, enrol
from v2v_testkit.synthetic.consortium import (
    CRYO,
    FINS,
    GMP_SITES,
    HOSPITALS,
    key_ring,
    site_signers,
)
from v2v_testkit.synthetic.manufacturing import Made, manufacture
from v2v_testkit.synthetic.patient import Journey
from v2v_testkit.synthetic.release import Released, post_release, release_batch
from v2v_testkit.synthetic.sealing import Draft, StreamSealer
from v2v_testkit.synthetic.shipping import Route, ship

GENERATOR_NAMESPACE = UUID("2c5d8e1f-4a7b-5c90-8d12-6e3f9a0b4c7d")
DEFAULT_START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
PATIENT_SPACING = timedelta(hours=3)
SEED_STRIDE = 7_919
CONTEXT_ORDER = ("intake", "manufacturing", "logistics", "release", "infusion")


@dataclass
class GeneratedHistory:
    by_topic: dict[str, list[bytes]]
    keys: KeyRing
    signers: dict[str, SiteSigningKey]
    cois: list[str]

    @property
    def event_count(self) -> int:
        return sum(len(records) for records in self.by_topic.values())

    def all_records(self) -> list[tuple[str, int, bytes]]:
        """(topic, offset, value) of every record, topic by topic."""
        return [
            (topic, offset, value)
            for topic, values in self.by_topic.items()
            for offset, value in enumerate(values)
        ]


def generate_history(
    seed: int,
    patients: int,
    *,
    start: datetime | None = None,
    rules: ProtocolRules = DEFAULT_RULES,
) -> GeneratedHistory:
    """`patients` journeys, one starting every ~3 hours from `start`, at sites that all apply
    `rules` (the windows the events record)."""
    signers = site_signers(seed)
    keys = key_ring(signers)
    namespace = uuid5(GENERATOR_NAMESPACE, f"seed:{seed}")
    drafts: list[Draft] = []
    cois: list[str] = []
    for number in range(patients):
        journey = new_journey(seed, namespace, number, start or DEFAULT_START, rules)
        run(journey)
        drafts.extend(journey.drafts)
        cois.append(journey.coi)
    drafts.sort(key=lambda draft: draft.recorded_at)
    sealer = StreamSealer(signers)
    by_topic: dict[str, list[bytes]] = {topic_for(context): [] for context in CONTEXT_ORDER}
    for draft in drafts:
        by_topic[topic_for(draft.context)].append(sealer.seal(draft))
    return GeneratedHistory(by_topic, keys, signers, cois)


def new_journey(
    seed: int,
    namespace: UUID,
    number: int,
    start: datetime,
    rules: ProtocolRules = DEFAULT_RULES,
) -> Journey:
    rng = random.Random(f"{seed}:{number}")
    hospital = rng.choice(HOSPITALS)
    began = start + number * PATIENT_SPACING + timedelta(minutes=rng.uniform(0, 120))
    serial = (seed * SEED_STRIDE + number) % 999_999  # other seeds, other COIs and DINs
    coi = str(issue_coi(FINS[hospital], 25, serial + 1))
    gmp = rng.choice(GMP_SITES)
    return Journey(rng, namespace, serial, coi, hospital, gmp, began, rules=rules)


def run(journey: Journey) -> None:
    """Enrolment to infusion; a failed or rejected batch starts a second cycle (once)."""
    enrol(journey)
    for cycle in (1, 2):
        if cycle == 2:
            book_slot(journey)
        collections = [collect(journey, cycle)]
        if cycle == 1 and journey.chance(0.07):
            collections.append(collect(journey, 11, collections[0].condition))
        ship_to_manufacturing(journey, collections, cycle)
        made = manufacture(journey, collections, cycle)
        released = release_batch(journey, made) if made else None
        if made and released:
            treat(journey, made, released, cycle)
            return


def ship_to_manufacturing(journey: Journey, collections: list[Collected], cycle: int) -> None:
    first, rules = collections[0], journey.rules
    fresh = first.condition != CRYO
    route = Route(
        journey.enrolling_site,
        journey.manufacturing_site,
        first.condition,
        first.window_starts_at + rules.fresh_apheresis if fresh else None,
        f"fresh apheresis: collection end + {rules.fresh_apheresis_hours} h" if fresh else "",
    )
    dins = [din for collected in collections for din in collected.dins]
    ship(journey, dins, route, f"apheresis-{cycle}")


def treat(journey: Journey, made: Made, released: Released, cycle: int) -> None:
    fresh, rules = made.hold != CRYO, journey.rules
    route = Route(
        journey.manufacturing_site,
        journey.treating_site,
        made.hold,
        released.decided_at + rules.fresh_product if fresh else None,
        f"fresh product: release + {rules.fresh_product_hours} h" if fresh else "",
    )
    ship(journey, made.product_dins[:1], route, f"product-{cycle}")
    infuse(journey, made, released)
    if released.post_release_pending:
        post_release(journey, made, released)
