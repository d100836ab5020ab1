"""Post-release failure alerts at this treating site and their e-signed acknowledgement.

A failure is an alert here when its COI is treated here or a unit of its batch was received
here. Until the treating physician acknowledges it here (re-authenticated e-signature, signer
role "physician", the manifestation bound to the hash of the signed record), no unit of the
batch passes the bedside check or is infused at this site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError

from v2v_infusion.domain.acknowledgement import (
    FailureAcknowledgement,
    check_decision,
    signed_record,
)
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import PHYSICIAN, FailureAlert
from v2v_infusion.views import AlertView
from v2v_platform import limits
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, InvalidInput, NotFound, Refused
from v2v_platform.esign import SignatureRequest
from v2v_platform.scope import Scope

if TYPE_CHECKING:
    from v2v_infusion.application import InfusionApplication


class FailureAlerts:
    def __init__(self, app: InfusionApplication) -> None:
        self.app = app

    def visible(self, scope: Scope, unacknowledged_only: bool = False) -> list[AlertView]:
        """This site's alerts, oldest first; none for a caller of another site."""
        if not scope.sees([self.app.site_id]):
            return []
        views = [
            AlertView.of(alert, self.app.units.acknowledgement(alert.failure_id))
            for alert in self.app.facts.failures()
            if self._concerns_this_site(alert)
        ]
        return [view for view in views if not (unacknowledged_only and view.acknowledged)]

    def acknowledge(
        self, failure_id: str, decision: str, request: SignatureRequest, by: Attribution
    ) -> AlertView:
        """The treating physician's e-signed acknowledgement (signer role "physician")."""
        app = self.app
        by = app.check_local(by)
        limits.check_signature_request(request)
        alert = self._alert(limits.check_id(failure_id, "failure_id"))
        text = check_decision(decision)
        if request.user_id != by.user_id:
            raise InvalidInput(
                f"the acknowledgement is recorded by {by.user_id} but signed by"
                f" {request.user_id}: the physician signs their own acknowledgement"
            )
        self._check_unacknowledged(alert)
        signature = app.signer.sign(app.site_id, request, PHYSICIAN, signed_record(alert, text))
        acknowledgement = FailureAcknowledgement.acknowledge(
            alert, text, signature, app.clock(), by
        )
        try:
            app.save(acknowledgement)
        except IntegrityError:
            self._check_unacknowledged(alert)  # another physician's acknowledgement won
            raise Conflict(f"failure {alert.failure_id} changed meanwhile; try again") from None
        return AlertView.of(alert, acknowledgement)

    def _alert(self, failure_id: str) -> FailureAlert:
        alert = self.app.facts.failure(failure_id.strip())
        if alert is None or not self._concerns_this_site(alert):
            raise NotFound(f"no post-release failure {failure_id!r} is known at {self.app.site_id}")
        return alert

    def _check_unacknowledged(self, alert: FailureAlert) -> None:
        earlier = self.app.units.acknowledgement(alert.failure_id)
        if earlier is not None:
            signer = earlier.physician_signature["printed_name"]
            raise Refused(
                f"failure {alert.failure_id} was already acknowledged at {self.app.site_id} by"
                f" {signer} ({earlier.acknowledged_at.isoformat()}): {earlier.decision}"
            )

    def _concerns_this_site(self, alert: FailureAlert) -> bool:
        if self.app.facts.treating_site_of(alert.coi) == self.app.site_id:
            return True
        return any(self._received_here(din) for din in alert.product_dins)

    def _received_here(self, din: str) -> bool:
        unit_id = ProductAtSite.create_id(self.app.site_id, din[:13])
        return self.app.find(ProductAtSite, unit_id) is not None
