"""`Journey`: one patient's synthetic chain while it is written: identifiers, sites, a clock,
the protocol rules its sites apply, and the drafts (envelopes-to-be) so far. The steps that
fill it are in collection.py, shipping.py, manufacturing.py, release.py and bedside.py."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID, uuid5

from google.protobuf.message import Message

from v2v.common.v1 import common_pb2
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules
from v2v_testkit.synthetic.consortium import FINS, Person, people, stamp
from v2v_testkit.synthetic.sealing import Draft

THERAPY_NAMESPACE = UUID("5b0c1f4e-7a3d-5e2b-9c8f-1a2b3c4d5e6f")


@dataclass
class Journey:
    """One patient's generated chain: identifiers, sites, a clock and the drafts so far.

    `rules`: the protocol rules every site of the journey applies; the events that apply a
    window record it (`fresh_window_hours`, `window_ends_at`, `infuse_by`, `window_minutes`)
    with `rules.tag`, as the services do."""

    rng: random.Random
    namespace: UUID
    number: int
    coi: str
    enrolling_site: str
    manufacturing_site: str
    now: datetime
    drafts: list[Draft] = field(default_factory=list)
    din_count: int = 0
    slot_id: str = ""
    rules: ProtocolRules = DEFAULT_RULES

    @property
    def treating_site(self) -> str:
        return self.enrolling_site

    @property
    def therapy_id(self) -> str:
        return str(uuid5(THERAPY_NAMESPACE, self.coi))

    def uid(self, kind: str, *parts: object) -> str:
        return str(uuid5(self.namespace, ":".join([kind, str(self.number), *map(str, parts)])))

    def din(self, site: str) -> str:
        """A fresh 15-character DIN (flags 00) of the site's facility; unique per history."""
        self.din_count += 1
        sequence = (self.number * 16 + self.din_count) % 999_999 + 1
        return f"{FINS[site]}25{sequence:06d}00"

    def person(self, site: str, role: str, index: int | None = None) -> Person:
        staff = people(site)[role]
        return staff[self.rng.randrange(len(staff)) if index is None else index % len(staff)]

    def advance(self, minimum_minutes: float, maximum_minutes: float) -> datetime:
        self.now += timedelta(minutes=self.rng.uniform(minimum_minutes, maximum_minutes))
        return self.now

    def chance(self, probability: float) -> bool:
        return self.rng.random() < probability

    def add(
        self,
        context: str,
        aggregate: tuple[str, str],
        payload: Message,
        site: str,
        actor: Person,
        *,
        occurred_at: datetime | None = None,
        reason: str = "",
        meaning: str = "",
    ) -> None:
        self.drafts.append(
            Draft(
                context,
                aggregate[0],
                aggregate[1],
                self.coi,
                self.now,
                payload,
                site,
                actor,
                occurred_at,
                reason,
                meaning,
            )
        )

    def signature(
        self, person: Person, meaning: str, record: str
    ) -> common_pb2.SignatureManifestation:
        digest = hashlib.sha256(f"{self.coi}|{record}".encode()).hexdigest()
        return common_pb2.SignatureManifestation(
            user_id=person[0],
            printed_name=person[1],
            meaning=meaning,
            signed_at=stamp(self.now),
            record_hash=digest,
        )
