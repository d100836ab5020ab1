"""The never-repeating sequence of product DINs of this service's facility (FIN), per year.

A site-level aggregate (empty COI): reservations race on its version, so two harvests can
never be given the same sequence numbers.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_manufacturing.domain.events import AttributedCreated, AttributedEvent, attributed
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Refused
from v2v_platform.ids import Din, issue_din

NAMESPACE = UUID("a3e1f7c2-6d0b-5e49-8c3f-71b2d9e4a605")
LAST_SEQUENCE = 999_999
SITE_LEVEL = ""


class ProductDinSequence(Aggregate):
    class Started(AttributedCreated):
        fin: str
        year: int
        first_sequence: int
        count: int
        batch_id: str
        batch_coi: str

    class DinsReserved(AttributedEvent):
        fin: str
        year: int
        first_sequence: int
        count: int
        batch_id: str
        batch_coi: str

        def apply(self, aggregate: Any) -> None:
            aggregate.last_sequence = self.first_sequence + self.count - 1

    def __init__(self, fin: str, year: int, first_sequence: int, count: int, **_: Any) -> None:
        self.fin = fin
        self.year = year
        self.last_sequence = first_sequence + count - 1

    @staticmethod
    def create_id(fin: str, year: int) -> UUID:
        return uuid5(NAMESPACE, f"product-dins:{fin}:{year}")

    @classmethod
    def start(
        cls, fin: str, year: int, count: int, batch_id: str, coi: str, by: Attribution
    ) -> tuple[ProductDinSequence, list[Din]]:
        check_room(0, count)
        sequence = cls._create(
            cls.Started,
            id=cls.create_id(fin, year),
            fin=fin,
            year=year,
            first_sequence=1,
            count=count,
            batch_id=batch_id,
            batch_coi=coi,
            **attributed(by, SITE_LEVEL),
        )
        return sequence, sequence.dins(1, count)

    def reserve(self, count: int, batch_id: str, coi: str, by: Attribution) -> list[Din]:
        check_room(self.last_sequence, count)
        first = self.last_sequence + 1
        self.trigger_event(
            self.DinsReserved,
            fin=self.fin,
            year=self.year,
            first_sequence=first,
            count=count,
            batch_id=batch_id,
            batch_coi=coi,
            **attributed(by, SITE_LEVEL),
        )
        return self.dins(first, count)

    def dins(self, first: int, count: int) -> list[Din]:
        return [issue_din(self.fin, self.year, n) for n in range(first, first + count)]


def check_room(last_sequence: int, count: int) -> None:
    if last_sequence + count > LAST_SEQUENCE:
        raise Refused("the product DIN sequence of this facility is exhausted for this year")
