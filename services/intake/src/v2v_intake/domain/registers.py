"""Internal registers that must never hand out the same thing twice.

They live in their own (unpublished) event store: they are not facts about one COI, so they
have no place on a COI-keyed topic, and keeping them out of the outbox keeps every published
aggregate's hash chain continuous.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_platform.errors import Conflict

REGISTER_NAMESPACE = UUID("8e2f4a61-3c7b-5d90-a1e4-6b5c7d8e9f01")
MAX_SEQUENCE = 999_999


def sequence_register_id(kind: str, fin: str, year: int) -> UUID:
    return uuid5(REGISTER_NAMESPACE, f"sequence:{kind}:{fin}:{year:02d}")


def pseudonym_register_id(pseudonym: str) -> UUID:
    return uuid5(REGISTER_NAMESPACE, f"pseudonym:{pseudonym}")


class SequenceRegister(Aggregate):
    """Sequence numbers 1-999999 of one identifier kind (COI or DIN) for one FIN and year.

    `last` is the last number recorded as issued; a process reserving a run records the whole
    run (`reserve`) and hands it out from memory, so numbers after the last one it handed out
    and up to `last` may never be issued (gaps), but none at or before `last` is issued again."""

    class Started(Aggregate.Created):
        class_version = 1
        kind: str
        fin: str
        year: int

        def apply(self, aggregate: SequenceRegister) -> None:
            aggregate.kind, aggregate.fin, aggregate.year = self.kind, self.fin, self.year

    class NumbersIssued(Aggregate.Event):
        class_version = 1
        first: int
        count: int

        def apply(self, aggregate: SequenceRegister) -> None:
            aggregate.last = self.first + self.count - 1

    def __init__(self) -> None:
        self.kind, self.fin, self.year, self.last = "", "", 0, 0

    @classmethod
    def start(cls, kind: str, fin: str, year: int) -> SequenceRegister:
        register: SequenceRegister = cls._create(
            cls.Started, id=sequence_register_id(kind, fin, year), kind=kind, fin=fin, year=year
        )
        return register

    def reserve(self, first: int, last: int) -> None:
        """Record ``first``-``last`` as issued (a run a process hands out from memory, or a
        DIN block's numbers); ``first`` is after every number recorded before."""
        if not self.last < first <= last:
            raise ValueError(f"cannot reserve {first}-{last} after {self.last}")
        if last > MAX_SEQUENCE:
            raise Conflict(
                f"{self.kind} sequence numbers for {self.fin} in year {self.year:02d} are exhausted"
            )
        self.trigger_event(self.NumbersIssued, first=first, count=last - first + 1)


class PseudonymRegister(Aggregate):
    """Which therapy (COI) of a patient pseudonym is open, if any."""

    class Started(Aggregate.Created):
        class_version = 1
        pseudonym: str

    class TherapyOpened(Aggregate.Event):
        class_version = 1
        coi: str

        def apply(self, aggregate: PseudonymRegister) -> None:
            aggregate.open_coi = self.coi

    class TherapyClosed(Aggregate.Event):
        class_version = 1
        coi: str

        def apply(self, aggregate: PseudonymRegister) -> None:
            aggregate.open_coi = ""

    def __init__(self) -> None:
        self.open_coi = ""

    @classmethod
    def start(cls, pseudonym: str) -> PseudonymRegister:
        register: PseudonymRegister = cls._create(
            cls.Started, id=pseudonym_register_id(pseudonym), pseudonym=pseudonym
        )
        return register

    def open(self, coi: str) -> None:
        if self.open_coi:
            raise Conflict(f"the pseudonym already has an open therapy {self.open_coi}")
        self.trigger_event(self.TherapyOpened, coi=coi)

    def close(self, coi: str) -> None:
        if self.open_coi == coi:
            self.trigger_event(self.TherapyClosed, coi=coi)
