"""The infusion application at one treating site: commands and queries over plain values.

Commands take plain values plus the acting `Attribution`, reads the caller's `Scope`; both
raise `DomainError`s and return the plain values of `views`. Each group of use cases is a
class in a sibling module, given this application when it is built:

    receipt_and_storage.py  receipt, storage and thaw of product units (refused receipts kept)
    bedside.py              the two-person bedside check (I2, I4, I5) by proven persons, and its
                            recorded refusals
    administration.py       infusion of a bedside-verified unit (a proven witness), adverse
                            events
    alerts.py               post-release failure alerts and their e-signed acknowledgement
    units_here.py           the units at this site: lookups, their view, the product unit read

Every change is saved under optimistic concurrency and retried from a fresh read when another
change won the race. Facts from other contexts (product units, release status, post-release
failures, treating sites) and every treating site's infusions come only from this service's
own projection of their Kafka events (`ports.InfusionFacts`). The windows applied are the
site's `ProtocolRules`, recorded (`tag`) on the events that apply them. This application's
notification log is the outbox: each aggregate belongs to ONE chain of identity and each event
carries its valid COI, the Kafka key.

Each site acts only on its own patients. A unit is received, stored, thawed, verified and
infused here only when intake's enrolment names this site as its patient's treating site and
no site has infused it (`domain.site_rules`, checked at every step); a refused scan is never
published under a COI this site does not treat. What is recorded here relates to this
(treating) site: a caller from another site reads none of it (NotFound, as if absent; no
alerts), this site reads the units it holds and its own patients' units; an auditor reads
everything.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from v2v_infusion.application.administration import (
    Administration,
    AdverseEventReport,
    InfusionAndAdverseEvents,
)
from v2v_infusion.application.alerts import FailureAlerts
from v2v_infusion.application.bedside import BedsideVerification
from v2v_infusion.application.receipt_and_storage import ReceiptAndStorage
from v2v_infusion.application.units_here import UnitsHere
from v2v_infusion.ports import InfusionFacts, NoInfusionFacts
from v2v_infusion.unpublished_records import InfusionUnpublishedRecords
from v2v_infusion.views import AlertView, ProductUnitView, ScanView
from v2v_platform.attribution import Attribution
from v2v_platform.esign import ESigner, SignatureRequest
from v2v_platform.protocol_rules import DEFAULT_RULES, ProtocolRules
from v2v_platform.scope import Scope
from v2v_platform.service_application import (
    CLOCK_SKEW,
    MAX_ATTEMPTS,
    NotWired,
    ServiceApplication,
    utc_now,
)

__all__ = ["Administration", "AdverseEventReport", "InfusionApplication"]


class InfusionApplication(ServiceApplication[InfusionUnpublishedRecords]):
    context = "infusion"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        unpublished: InfusionUnpublishedRecords | None = None,
        facts: InfusionFacts | None = None,
        signer: ESigner | None = None,
        clock: Callable[[], datetime] = utc_now,
        rules: ProtocolRules = DEFAULT_RULES,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
    ) -> None:
        super().__init__(
            env,
            site_id=site_id,
            unpublished=unpublished,
            clock=clock,
            max_attempts=max_attempts,
            clock_skew=clock_skew,
        )
        self.facts: InfusionFacts = facts or NoInfusionFacts()
        self.rules = rules
        self._signer = signer
        self.units = UnitsHere(self)
        self.receipt = ReceiptAndStorage(self)
        self.bedside = BedsideVerification(self)
        self.infusions = InfusionAndAdverseEvents(self)
        self.alerts = FailureAlerts(self)

    @property
    def signer(self) -> ESigner:
        """The e-signer; NotWired in a process built only to relay."""
        if self._signer is None:
            raise NotWired("the infusion application was built without its e-signer")
        return self._signer

    # receipt, storage and thaw

    def receive_product(
        self, din_text: str, received_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        return self.receipt.receive(din_text, received_at, by)

    def store_product(
        self, din_text: str, location: str, stored_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        return self.receipt.store(din_text, location, stored_at, by)

    def start_thaw(
        self, din_text: str, thaw_started_at: datetime | None, by: Attribution
    ) -> ProductUnitView:
        return self.receipt.start_thaw(din_text, thaw_started_at, by)

    # the two-person bedside check

    def scan_at_bedside(
        self,
        wristband_coi: str,
        din_text: str,
        scanned_at: datetime | None,
        signature: SignatureRequest | None,
        by: Attribution,
    ) -> ScanView:
        return self.bedside.scan(wristband_coi, din_text, scanned_at, signature, by)

    # infusion and adverse events

    def administer_infusion(self, given: Administration, by: Attribution) -> ProductUnitView:
        return self.infusions.administer(given, by)

    def record_adverse_event(self, report: AdverseEventReport, by: Attribution) -> ProductUnitView:
        return self.infusions.record_adverse_event(report, by)

    # post-release failure alerts

    def list_alerts(self, scope: Scope, unacknowledged_only: bool = False) -> list[AlertView]:
        return self.alerts.visible(scope, unacknowledged_only)

    def acknowledge_alert(
        self, failure_id: str, decision: str, request: SignatureRequest, by: Attribution
    ) -> AlertView:
        return self.alerts.acknowledge(failure_id, decision, request, by)

    # reads

    def product_unit(self, din_text: str, scope: Scope) -> ProductUnitView:
        return self.units.product_unit(din_text, scope)
