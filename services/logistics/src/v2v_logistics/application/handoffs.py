"""Scans, offers and custody handoffs (couriers over HTTP, sites over gRPC): only a party to
the shipment acts on it (to anyone else it does not exist, and nothing is recorded); custody
passes when the custodian offered the shipment to the receiving party by its own call and
that party scanned every unit; no act goes on while a unit of the shipment is bound to two
COIs (`identity-conflict`). A refusal is saved on the shipment's chain before
`ScanRefused` is raised; a key sent again gets the same outcome. The scan time is the
device's (never in the future beyond the clock skew, never before the shipment's creation:
INVALID_ARGUMENT naming the field, nothing recorded); the label is read as its bounded echo,
so a refused scan records and answers at most 256 characters of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.parties import Caller, acting_problem
from v2v_logistics.domain.shipment import ScanOutcome, Shipment
from v2v_logistics.domain.values import ScanAttempt, parse_party
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.auth.identity import Role
from v2v_platform.errors import Forbidden

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class Handoffs:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def scan(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        """The receiving party (as authenticated) scans one unit."""
        attempt = self.checked(attempt)
        authored = self.app.authored(by)
        return self._act(
            shipment_id,
            caller(attempt.receiving_party, by),
            attempt,
            authored,
            lambda s: s.scan(attempt, self.app.facts.unit, authored),
        )

    def hand_over(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        """The receiving party (as authenticated) takes the shipment offered to it."""
        attempt = self.checked(attempt)
        authored = self.app.authored(by)
        return self._act(
            shipment_id,
            caller(attempt.receiving_party, by),
            attempt,
            authored,
            lambda s: s.hand_over(attempt, authored),
        )

    def offer(
        self, shipment_id: str, attempt: ScanAttempt, by: Attribution, field: str = "scanned_at"
    ) -> ScanOutcome:
        """The custodian (`attempt.from_party`, as authenticated) offers the shipment to
        `attempt.receiving_party`; `field`: what the offer's time is called where it was
        given."""
        attempt = self.checked(attempt, field)
        authored = self.app.authored(by)
        return self._act(
            shipment_id,
            caller(attempt.from_party, by),
            attempt,
            authored,
            lambda s: s.offer_handoff(attempt, self.app.parties_of(s), authored, field),
            field,
        )

    def checked(self, attempt: ScanAttempt, field: str = "scanned_at") -> ScanAttempt:
        """The attempt within the limits: its parties, key and time checked, its label echoed."""
        check_parties(attempt)
        limits.check_id(attempt.idempotency_key, "idempotency_key")
        scanned_at = self.app.when(attempt.scanned_at, field)
        return replace(
            attempt,
            from_party=attempt.from_party.strip(),
            scanned_at=scanned_at,
            label=limits.echo(attempt.label),
        )

    def _act(
        self,
        shipment_id: str,
        by: Caller,
        scan: ScanAttempt,
        authored: Attribution,
        act: Callable[[Shipment], ScanOutcome],
        field: str = "scanned_at",
    ) -> ScanOutcome:
        def attempt() -> tuple[ScanOutcome, str]:
            shipment = self.app.related(shipment_id, by)
            if scan.idempotency_key not in shipment.outcomes:  # nothing recorded out of order
                shipment.check_after_creation(scan.scanned_at, field)
            outcome = self._identity_refusal(shipment, scan, authored) or act(shipment)
            self.app.save(shipment)
            return outcome, shipment.coi

        outcome, coi = self.app.retrying(attempt)
        if outcome.mismatch is not None:
            raise ScanRefused(outcome.mismatch, coi)
        return outcome

    def _identity_refusal(
        self, shipment: Shipment, scan: ScanAttempt, authored: Attribution
    ) -> ScanOutcome | None:
        """A unit of the shipment is bound to two COIs: the act is recorded as refused
        (`identity-conflict`); a key already applied keeps its outcome."""
        if scan.idempotency_key in shipment.outcomes:
            return None
        mismatch = self.app.identity_problem(shipment)
        if mismatch is None:
            return None
        shipment.record_mismatch(scan, mismatch, authored)
        return ScanOutcome(False, mismatch=mismatch)


def caller(party: str, by: Attribution) -> Caller:
    """The authenticated party acting (a site in its courier role may be a courier company; a
    site acts for one of its departments only in the role that department stands for)."""
    problem = acting_problem(party.strip(), by.site_id, by.role)
    if problem is not None:
        raise Forbidden(problem)
    return Caller(party, courier_role=by.role == Role.COURIER.value)


def check_parties(attempt: ScanAttempt) -> None:
    """The receiving party, and the giver when one is named (a claim, checked against the
    custodian), are well-formed parties."""
    if attempt.from_party.strip():
        parse_party(attempt.from_party)
    parse_party(attempt.receiving_party)
