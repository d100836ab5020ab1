"""The intake's unpublished records: never-repeating COI/DIN numbers and the open therapy of
each patient pseudonym.

DIN numbers come only from this intake's declared block under its FIN (`din_block`, from the
consortium's DIN allocations: `v2v_platform.din_allocation`), continuing after the last number
the register issued (a restart, or another replica sharing the store, goes on from there); past
the block's end nothing is issued (`DinBlockExhausted`). Without a block no DIN is issued.

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
from v2v_platform.din_allocation import DinBlock
from v2v_platform.errors import Refused
from v2v_platform.service_application import MAX_ATTEMPTS, UnpublishedRecords

DIN = "DIN"


class IntakeUnpublishedRecords(UnpublishedRecords):
    name = "IntakeRegisters"  # the stored tables' name: renaming it would restart the numbers
    snapshotting_intervals = {SequenceRegister: 100}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        *,
        din_block: DinBlock | None = None,
    ) -> None:
        super().__init__(env, max_attempts)
        self.din_block = din_block

    def issue_dins(self, fin: str, year: int, count: int) -> list[int]:
        """``count`` consecutive DIN sequence numbers of this intake's block, never issued
        before for (FIN, year)."""
        block = self.din_block
        if block is None or block.fin != fin:
            declared = f"a block under FIN {block.fin}" if block else "no DIN block"
            raise Refused(f"this intake has {declared}: it issues no DIN under FIN {fin}")

        def attempt() -> list[int]:
            register = self.find(
                SequenceRegister, sequence_register_id(DIN, fin, year)
            ) or SequenceRegister.start(DIN, fin, year)
            numbers = block.next_numbers(register.last, count)
            # the register's own event, from the block's next number (its `issue` knows no block)
            register.trigger_event(SequenceRegister.NumbersIssued, first=numbers[0], count=count)
            self.save(register)
            return numbers

        return self.retrying(attempt)

    def issue_numbers(self, kind: str, fin: str, year: int, count: int = 1) -> list[int]:
        """``count`` consecutive sequence numbers never issued before for (kind, FIN, year):
        COIs (DINs only from the declared block: `issue_dins`)."""
        if kind == DIN:
            raise ValueError("DIN numbers come from the declared block: issue_dins")

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
