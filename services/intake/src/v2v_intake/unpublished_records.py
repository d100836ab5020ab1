"""The intake's unpublished records: never-repeating COI/DIN numbers and the open therapy of
each patient pseudonym.

Numbers are reserved in runs: one write of the (kind, FIN, year) `SequenceRegister` records the
next `reservation_size` numbers (V2V_NUMBER_RESERVATION_SIZE, default 50) as issued, and this
process hands them out from memory under a lock until the run is used up, then reserves the
next run. So enrolments and labellings do not all write (and collide on) the one register: one
in `reservation_size` does. Optimistic concurrency keeps reservations apart: two writers of the
same register version collide in the event store, the loser re-reads and tries again
(`retrying`; Conflict after `max_attempts`), so no number is issued twice, also by several
processes sharing the store. A restart goes on after the last reservation: numbers of a run
not handed out before a process stopped (or crashed) are never issued (gaps are allowed,
repeats never); a run too short for the DINs of one labelling is continued without a gap when
no other process reserved since, and left as a gap otherwise. Reservation size 1 is the
behaviour before runs: one register write per number. Stores written either way go on from
their last recorded number.

DIN numbers come only from this intake's declared block under its FIN (`din_block`, from the
consortium's DIN allocations: `v2v_platform.din_allocation`): a run never goes past the block's
end, and past it nothing is issued (`DinBlockExhausted`). Without a block no DIN is issued.

They belong to no chain of identity, so they are never relayed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from v2v_intake.domain.registers import (
    MAX_SEQUENCE,
    PseudonymRegister,
    SequenceRegister,
    pseudonym_register_id,
    sequence_register_id,
)
from v2v_platform.din_allocation import DinBlock
from v2v_platform.errors import Conflict, Refused
from v2v_platform.service_application import MAX_ATTEMPTS, UnpublishedRecords

DIN = "DIN"
DEFAULT_RESERVATION_SIZE = 50
"""How many numbers one register write reserves unless told otherwise."""


@dataclass
class _Run:
    """Numbers ``next``-``last`` this process reserved and has not handed out yet."""

    next: int
    last: int

    @property
    def left(self) -> int:
        return max(self.last - self.next + 1, 0)

    def take(self, count: int) -> list[int]:
        numbers = list(range(self.next, self.next + count))
        self.next += count
        return numbers


@dataclass(frozen=True)
class _Sequence:
    """Where one kind of number may be issued: ``lowest``-``highest``, and what refuses
    ``count`` numbers after a given one that do not fit (raises, else returns)."""

    kind: str
    lowest: int
    highest: int
    check_fits: Callable[[int, int], object]


class IntakeUnpublishedRecords(UnpublishedRecords):
    name = "IntakeRegisters"  # the stored tables' name: renaming it would restart the numbers
    snapshotting_intervals = {SequenceRegister: 100}

    def __init__(
        self,
        env: dict[str, str] | None = None,
        max_attempts: int = MAX_ATTEMPTS,
        *,
        din_block: DinBlock | None = None,
        reservation_size: int = DEFAULT_RESERVATION_SIZE,
    ) -> None:
        if reservation_size < 1:
            raise ValueError(f"reservation_size must be at least 1, not {reservation_size}")
        super().__init__(env, max_attempts)
        self.din_block = din_block
        self.reservation_size = reservation_size
        self._runs: dict[UUID, _Run] = {}
        self._locks: dict[UUID, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    def issue_dins(self, fin: str, year: int, count: int) -> list[int]:
        """``count`` consecutive DIN sequence numbers of this intake's block, never issued
        before for (FIN, year)."""
        block = self.din_block
        if block is None or block.fin != fin:
            declared = f"a block under FIN {block.fin}" if block else "no DIN block"
            raise Refused(f"this intake has {declared}: it issues no DIN under FIN {fin}")
        din = _Sequence(DIN, block.first, block.last, block.next_numbers)
        return self._issue(din, fin, year, count)

    def issue_numbers(self, kind: str, fin: str, year: int, count: int = 1) -> list[int]:
        """``count`` consecutive sequence numbers never issued before for (kind, FIN, year):
        COIs (DINs only from the declared block: `issue_dins`)."""
        if kind == DIN:
            raise ValueError("DIN numbers come from the declared block: issue_dins")

        def check_fits(after: int, count: int) -> None:
            if count < 1:
                raise ValueError(f"cannot issue {count} numbers")
            if after + count > MAX_SEQUENCE:
                raise Conflict(
                    f"{kind} sequence numbers for {fin} in year {year:02d} are exhausted"
                )

        return self._issue(_Sequence(kind, 1, MAX_SEQUENCE, check_fits), fin, year, count)

    def _issue(self, sequence: _Sequence, fin: str, year: int, count: int) -> list[int]:
        """From this process's run of the register, reserving the next run when it has fewer
        than ``count`` numbers left."""
        register_id = sequence_register_id(sequence.kind, fin, year)
        with self._lock_of(register_id):
            current = self._runs.get(register_id)
            if current is not None and current.left >= count > 0:
                return current.take(count)

            def reserve() -> _Run:
                register = self.find(SequenceRegister, register_id) or SequenceRegister.start(
                    sequence.kind, fin, year
                )
                if current is not None and current.left and register.last == current.last:
                    start = current.next  # no reservation since ours: go on without a gap
                else:
                    start = max(register.last + 1, sequence.lowest)
                sequence.check_fits(start - 1, count)
                first = max(register.last + 1, sequence.lowest)  # the first number reserved now
                run_end = min(first + self.reservation_size - 1, sequence.highest)
                last = max(start + count - 1, run_end)
                register.reserve(first, last)
                self.save(register)
                return _Run(start, last)

            run = self._runs[register_id] = self.retrying(reserve)
            return run.take(count)

    def _lock_of(self, register_id: UUID) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(register_id, threading.Lock())

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
