"""The destination site: delivery (the custodian offered it the shipment; it, or the department
the shipment goes to, scanned exactly the manifest; past the window only with a signed
override; never while a unit of the shipment is bound to two COIs, `identity-conflict`),
receipt inspection, and exceptions recorded by either party site. Only a party to
the shipment calls these: to any other site the shipment does not exist (nothing recorded).
Scanned labels are read as their bounded echoes (at most as many as a manifest holds).
The receipt happened at `received_at` (the clinical time; default now, never in the future
beyond the clock skew, never before the shipment's creation or its last handoff): the
stability window is judged on it. The inspection happened at `inspected_at` (never before the
receipt), an exception at `occurred_at` (never before the shipment's creation; recorded apart,
at the server's time); both default to now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import uuid4

from v2v_logistics.domain.matching import Mismatch, ScanRefused
from v2v_logistics.domain.shipment import Shipment
from v2v_logistics.domain.values import ExceptionKind, ScanAttempt, parse_party
from v2v_logistics.views import ShipmentView
from v2v_platform import limits
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.errors import Forbidden

if TYPE_CHECKING:
    from v2v_logistics.application import LogisticsApplication


class Receipt:
    def __init__(self, app: LogisticsApplication) -> None:
        self.app = app

    def receive(
        self,
        shipment_id: str,
        labels: Sequence[str],
        from_party: str,
        override: WindowOverride | None,
        by: Attribution,
        idempotency_key: str = "",
        department: str = "",
        received_at: datetime | None = None,
    ) -> ShipmentView:
        labels = [limits.echo(label) for label in limits.check_items(labels, "scanned_labels")]
        self.app.check_override(override, "window_override")
        attempt = ScanAttempt(
            limits.check_id(idempotency_key, "idempotency_key") or f"receipt:{uuid4()}",
            self.app.when(received_at, "received_at"),
            parse_party(from_party) if from_party.strip() else "",
            self.app.acting_party(by, department),
            " ".join(labels),
        )
        authored = self.app.authored(by)
        caller = self.app.site_caller(by)

        def act() -> tuple[ShipmentView, Mismatch | None]:
            shipment = self.app.related(shipment_id, caller)
            shipment.check_receipt_time(attempt.scanned_at)
            mismatch = self.app.identity_problem(shipment)
            if mismatch is not None:
                shipment.record_mismatch(attempt, mismatch, authored)
            else:
                mismatch = shipment.receive(
                    attempt, labels, self.app.facts.unit, override, authored
                )
            self.app.save(shipment)
            return ShipmentView.of(shipment), mismatch

        view, mismatch = self.app.retrying(act)
        if mismatch is not None:
            raise ScanRefused(mismatch, view.coi)
        return view

    def inspect(
        self,
        shipment_id: str,
        intact: bool,
        log_reviewed: bool,
        notes: str,
        by: Attribution,
        inspected_at: datetime | None = None,
    ) -> ShipmentView:
        limits.check_free_text(notes, "notes")
        moment = self.app.when(inspected_at, "inspected_at")

        def change(shipment: Shipment) -> None:
            if by.site_id != shipment.destination_site_id:
                raise Forbidden(f"only {shipment.destination_site_id} inspects this receipt")
            authored = self.app.authored(by)
            shipment.inspect(intact, log_reviewed, notes, moment, authored)

        return self.app.change(shipment_id, self.app.site_caller(by), change)

    def record_exception(
        self,
        shipment_id: str,
        kind: ExceptionKind,
        by: Attribution,
        occurred_at: datetime | None = None,
    ) -> ShipmentView:
        moment = self.app.when(occurred_at, "occurred_at")

        def change(shipment: Shipment) -> None:
            self.app.check_party_site(shipment, by, "record an exception of")
            authored = self.app.authored(by)
            shipment.record_exception(kind, moment, self.app.clock(), authored)

        return self.app.change(shipment_id, self.app.site_caller(by), change)
