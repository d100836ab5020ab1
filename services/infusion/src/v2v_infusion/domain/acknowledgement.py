"""The treating physician's e-signed acknowledgement of a post-release failure at one site.

One aggregate per (failure, site): a failure is acknowledged once per site, and until then
no unit of the failed batch passes bedside verification there. The physician signs the record
{failure_id, coi, batch_id, test, product_dins, decision} (21 CFR 11.50: the manifestation,
printed name, UTC time and meaning, is bound to that record's hash and kept with it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

from v2v_infusion.domain.values import NAMESPACE, FailureAlert, require_text
from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.domain_events import AttributedCreated, attributed


def signed_record(alert: FailureAlert, decision: str) -> dict[str, Any]:
    """What the physician signs (the proto comment of PostReleaseFailureAcknowledged)."""
    return {
        "failure_id": alert.failure_id,
        "coi": alert.coi,
        "batch_id": alert.batch_id,
        "test": alert.test,
        "product_dins": list(alert.product_dins),
        "decision": decision,
    }


def check_decision(decision: str) -> str:
    limits.check_free_text(decision, "decision")
    return require_text("the physician's decision", decision)


class FailureAcknowledgement(Aggregate):
    class Acknowledged(AttributedCreated):
        failure_id: str
        batch_id: str
        test: str
        product_dins: list[str]
        decision: str
        acknowledged_at: datetime
        physician_signature: dict[str, str]
        signature_meaning: str

    def __init__(
        self,
        failure_id: str,
        decision: str,
        acknowledged_at: datetime,
        physician_signature: dict[str, str],
        **_: Any,
    ) -> None:
        self.failure_id = failure_id
        self.decision = decision
        self.acknowledged_at = acknowledged_at
        self.physician_signature = dict(physician_signature)

    @staticmethod
    def create_id(site_id: str, failure_id: str) -> UUID:
        return uuid5(NAMESPACE, f"acknowledgement:{site_id}/{failure_id}")

    @classmethod
    def acknowledge(
        cls,
        alert: FailureAlert,
        decision: str,
        signature: SignatureManifestation,
        acknowledged_at: datetime,
        by: Attribution,
    ) -> FailureAcknowledgement:
        acknowledged: FailureAcknowledgement = cls._create(
            cls.Acknowledged,
            id=cls.create_id(by.site_id, alert.failure_id),
            failure_id=alert.failure_id,
            batch_id=alert.batch_id,
            test=alert.test,
            product_dins=list(alert.product_dins),
            decision=check_decision(decision),
            acknowledged_at=acknowledged_at,
            physician_signature=signature.as_dict(),
            signature_meaning=signature.meaning,
            **attributed(by, alert.coi),
        )
        return acknowledged
