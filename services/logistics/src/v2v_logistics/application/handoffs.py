"""Scans and custody handoffs (couriers over HTTP, sites over gRPC): a refusal is saved on the
shipment's chain before `ScanRefused` is raised; a key sent again gets the same outcome.
The scan time is the device's (never in the future beyond the clock skew); the label is read
as its bounded echo, so a refused scan records and answers at most 256 characters of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.shipment import ScanOutcome, Shipment
from v2v_logistics.domain.values import ScanAttempt, parse_party
from v2v_platform import limits
from v2v_platform.attribution import Attribution

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class Handoffs:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def scan(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        attempt = self.checked(attempt)
        authored = self.app.authored(by)
        return self._scan_or_hand_over(
            shipment_id, lambda s: s.scan(attempt, self.app.facts.unit, authored)
        )

    def hand_over(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        attempt = self.checked(attempt)
        authored = self.app.authored(by)
        return self._scan_or_hand_over(shipment_id, lambda s: s.hand_over(attempt, authored))

    def checked(self, attempt: ScanAttempt) -> ScanAttempt:
        """The attempt within the limits: its parties, key and time checked, its label echoed."""
        check_parties(attempt)
        limits.check_id(attempt.idempotency_key, "idempotency_key")
        scanned_at = self.app.when(attempt.scanned_at, "scanned_at")
        return replace(attempt, scanned_at=scanned_at, label=limits.echo(attempt.label))

    def _scan_or_hand_over(
        self, shipment_id: str, act: Callable[[Shipment], ScanOutcome]
    ) -> ScanOutcome:
        def attempt() -> ScanOutcome:
            shipment = self.app.load(shipment_id)
            outcome = act(shipment)
            self.app.save(shipment)
            return outcome

        outcome = self.app.retrying(attempt)
        if outcome.mismatch is not None:
            raise ScanRefused(outcome.mismatch)
        return outcome


def check_parties(attempt: ScanAttempt) -> None:
    parse_party(attempt.from_party)
    parse_party(attempt.receiving_party)
