"""The registers application: never-repeating COI/DIN numbers and open therapies per pseudonym.

Optimistic concurrency does the work: two writers of the same register version collide in
the event store (IntegrityError), the loser reloads and tries again, so no number is ever
issued twice, even by several processes sharing the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from v2v_intake.domain.registers import (
    PseudonymRegister,
    SequenceRegister,
    pseudonym_register_id,
    sequence_register_id,
)
from v2v_platform.errors import Conflict

MAX_ATTEMPTS = 200
A = TypeVar("A", bound=Aggregate)


class IntakeRegisters(Application[UUID]):
    name = "IntakeRegisters"
    snapshotting_intervals = {SequenceRegister: 100}

    def issue_numbers(self, kind: str, fin: str, year: int, count: int = 1) -> list[int]:
        """``count`` consecutive sequence numbers never issued before for (kind, FIN, year)."""
        for _ in range(MAX_ATTEMPTS):
            register = self._get_or_start(
                sequence_register_id(kind, fin, year),
                lambda: SequenceRegister.start(kind, fin, year),
            )
            numbers = register.issue(count)
            if self._saved(register):
                return numbers
        raise Conflict(f"could not issue a {kind} number: too many concurrent requests; retry")

    def claim_pseudonym(self, pseudonym: str, new_coi: Callable[[], str]) -> tuple[str, bool]:
        """The pseudonym's open COI and True, or a new COI opened for it and False."""
        for _ in range(MAX_ATTEMPTS):
            register = self._get_or_start(
                pseudonym_register_id(pseudonym), lambda: PseudonymRegister.start(pseudonym)
            )
            if register.open_coi:
                return register.open_coi, True
            coi = new_coi()
            register.open(coi)
            if self._saved(register):
                return coi, False
        raise Conflict("could not reserve the pseudonym: too many concurrent requests; retry")

    def release_pseudonym(self, pseudonym: str, coi: str) -> None:
        for _ in range(MAX_ATTEMPTS):
            try:
                register: PseudonymRegister = self.repository.get(pseudonym_register_id(pseudonym))
            except AggregateNotFoundError:
                return
            register.close(coi)
            if self._saved(register):
                return
        raise Conflict("could not release the pseudonym: too many concurrent requests; retry")

    def _get_or_start(self, register_id: UUID, start: Callable[[], A]) -> A:
        try:
            register: A = self.repository.get(register_id)
        except AggregateNotFoundError:
            return start()
        return register

    def _saved(self, register: Aggregate) -> bool:
        try:
            self.save(register)
        except IntegrityError:
            return False
        return True
