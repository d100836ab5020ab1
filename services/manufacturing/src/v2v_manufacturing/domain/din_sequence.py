"""The never-repeating sequence of product DINs of this service's facility (FIN), per year.

INTERNAL: the sequence serves every COI, so it lives in the unpublished records and is
never published (the DINs a batch received are published in its `ProductUnitsCreated`).
Reservations race on the aggregate's version, so two harvests are never given the same
numbers. A batch's reservation is remembered: asking again for the same batch and count
(a retried harvest, e.g. after a crash before the batch was saved) returns the same DINs.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_platform.attribution import Attribution
from v2v_platform.domain_events import LocalCreated, LocalEvent, local
from v2v_platform.errors import Refused
from v2v_platform.ids import Din, issue_din

NAMESPACE = UUID("a3e1f7c2-6d0b-5e49-8c3f-71b2d9e4a605")
LAST_SEQUENCE = 999_999


class ProductDinSequence(Aggregate):
    class Started(LocalCreated):
        fin: str
        year: int

    class DinsReserved(LocalEvent):
        first_sequence: int
        count: int
        batch_id: str
        batch_coi: str

        def apply(self, aggregate: Any) -> None:
            aggregate.last_sequence = self.first_sequence + self.count - 1
            aggregate.reservations[self.batch_id] = [self.first_sequence, self.count]

    def __init__(self, fin: str, year: int, **_: Any) -> None:
        self.fin = fin
        self.year = year
        self.last_sequence = 0
        # batch id -> [first sequence, count] of its latest reservation (plain JSON: snapshots)
        self.reservations: dict[str, list[int]] = {}

    @staticmethod
    def create_id(fin: str, year: int) -> UUID:
        return uuid5(NAMESPACE, f"product-dins:{fin}:{year}")

    @classmethod
    def start(cls, fin: str, year: int, by: Attribution) -> ProductDinSequence:
        sequence: ProductDinSequence = cls._create(
            cls.Started, id=cls.create_id(fin, year), fin=fin, year=year, **local(by)
        )
        return sequence

    def reserved_for(self, batch_id: str, count: int) -> list[Din] | None:
        """The DINs already reserved for this batch and count, if any."""
        earlier = self.reservations.get(batch_id)
        if earlier is None or earlier[1] != count:
            return None
        return self.dins(earlier[0], count)

    def reserve(self, count: int, batch_id: str, coi: str, by: Attribution) -> list[Din]:
        check_room(self.last_sequence, count)
        first = self.last_sequence + 1
        self.trigger_event(
            self.DinsReserved,
            first_sequence=first,
            count=count,
            batch_id=batch_id,
            batch_coi=coi,
            **local(by),
        )
        return self.dins(first, count)

    def dins(self, first: int, count: int) -> list[Din]:
        return [issue_din(self.fin, self.year, n) for n in range(first, first + count)]


def check_room(last_sequence: int, count: int) -> None:
    if last_sequence + count > LAST_SEQUENCE:
        raise Refused("the product DIN sequence of this facility is exhausted for this year")
