"""The intake's unpublished records: never-repeating COI/DIN numbers and the open therapy of
each patient pseudonym.

They belong to no chain of identity, so they are never relayed. Optimistic concurrency does
the work: two writers of the same register version collide in the event store, the loser
re-reads and tries again (`retrying`; Conflict after `max_attempts`), so no number is ever
issued twice, even by several processes sharing the store.
"""

from __future__ import annotations

from collections.abc import Callable

from v2v_intake.domain.registers import (
    PseudonymRegister,
    SequenceRegister,
    pseudonym_register_id,
    sequence_register_id,
)
from v2v_platform.service_application import UnpublishedRecords


class IntakeUnpublishedRecords(UnpublishedRecords):
    name = "IntakeRegisters"  # the stored tables' name: renaming it would restart the numbers
    snapshotting_intervals = {SequenceRegister: 100}

    def issue_numbers(self, kind: str, fin: str, year: int, count: int = 1) -> list[int]:
        """``count`` consecutive sequence numbers never issued before for (kind, FIN, year)."""

        def attempt() -> list[int]:
            register = self.find(
                SequenceRegister, sequence_register_id(kind, fin, year)
            ) or SequenceRegister.start(kind, fin, year)
            numbers = register.issue(count)
            self.save(register)
            return numbers

        return self.retrying(attempt)

    def claim_pseudonym(self, pseudonym: str, new_coi: Callable[[], str]) -> tuple[str, bool]:
        """The pseudonym's open COI and True, or a new COI opened for it and False."""

        def attempt() -> tuple[str, bool]:
            register = self.find(
                PseudonymRegister, pseudonym_register_id(pseudonym)
            ) or PseudonymRegister.start(pseudonym)
            if register.open_coi:
                return register.open_coi, True
            coi = new_coi()
            register.open(coi)
            self.save(register)
            return coi, False

        return self.retrying(attempt)

    def release_pseudonym(self, pseudonym: str, coi: str) -> None:
        def attempt() -> None:
            register = self.find(PseudonymRegister, pseudonym_register_id(pseudonym))
            if register is not None:
                register.close(coi)
                self.save(register)

        self.retrying(attempt)
