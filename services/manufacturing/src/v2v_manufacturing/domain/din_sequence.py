"""The never-repeating sequence of product DINs of this service's facility (FIN), per year.

Numbers come only from this manufacturing service's declared block under the FIN (`DinBlock`,
from the consortium's DIN allocations, `v2v_platform.din_allocation`): at an in-house site
intake numbers its apheresis bags under the same FIN from another block, so a product DIN never
repeats an apheresis bag's. The sequence goes on after its last reserved number (from the
block's start when none of it was reserved yet: e.g. a store that numbered from 1 before
blocks were declared) and refuses to go past the block's end (`DinBlockExhausted`).

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
from v2v_platform.din_allocation import DinBlock
from v2v_platform.domain_events import LocalCreated, LocalEvent, local
from v2v_platform.errors import Refused
from v2v_platform.ids import Din, issue_din

NAMESPACE = UUID("a3e1f7c2-6d0b-5e49-8c3f-71b2d9e4a605")


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

    def reserve(
        self, count: int, batch_id: str, coi: str, block: DinBlock, by: Attribution
    ) -> list[Din]:
        """`count` new DINs from `block` (this facility's block: its FIN is this sequence's)."""
        if block.fin != self.fin:
            raise Refused(
                f"the DIN block of {block.issuer} is under FIN {block.fin}, not this"
                f" facility's {self.fin}"
            )
        first = block.next_numbers(self.last_sequence, count)[0]
        self.trigger_event(
            self.DinsReserved,
            first_sequence=first,
            count=count,
            batch_id=batch_id,
            batch_coi=coi,
            **local(by),
        )
        return self.dins(first, count)

    def batch_of(self, sequence_number: int) -> str | None:
        """The batch whose latest reservation holds `sequence_number`, if any."""
        for batch_id, (first, count) in self.reservations.items():
            if first <= sequence_number < first + count:
                return batch_id
        return None

    def dins(self, first: int, count: int) -> list[Din]:
        return [issue_din(self.fin, self.year, n) for n in range(first, first + count)]
