"""Scans and custody handoffs (couriers over HTTP, sites over gRPC): a refusal is saved on the
shipment's chain before `ScanRefused` is raised; a key sent again gets the same outcome."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from v2v_logistics.domain.matching import ScanRefused
from v2v_logistics.domain.shipment import ScanOutcome, Shipment
from v2v_logistics.domain.values import ScanAttempt, parse_party
from v2v_platform.attribution import Attribution

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class Handoffs:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def scan(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        check_parties(attempt)
        authored = self.app.authored(by)
        return self._scan_or_hand_over(
            shipment_id, lambda s: s.scan(attempt, self.app.facts.unit, authored)
        )

    def hand_over(self, shipment_id: str, attempt: ScanAttempt, by: Attribution) -> ScanOutcome:
        check_parties(attempt)
        authored = self.app.authored(by)
        return self._scan_or_hand_over(shipment_id, lambda s: s.hand_over(attempt, authored))

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
