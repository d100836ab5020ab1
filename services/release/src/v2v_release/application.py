"""The release application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s and return the
plain values of `views`. The release record of a batch is opened by the first command for it,
from what release knows of the batch from manufacturing's events (`ReleaseFacts`, its own
projection); the specification version is the one in force when the batch started.

Decisions are e-signed: the record named in the events proto is signed by `ESigner` (which
re-authenticates the signer against this service's signer store) and the manifestation is
stored with the decision. Every result and decision carries its clinical time (`when`: as
given, not in the future beyond the clock skew, else now), kept apart from the recorded time
and from the signature's `signed_at` (the server's time); `domain.rules` keeps them causal.
Every change is saved under optimistic concurrency and retried from a fresh read when another
change won the race (two first commands for a batch collide on the record's id derived from
the batch id).

Events are authored by this service's site (which signs them on Kafka): QC commands come from
this site only; the treating physician's acceptance comes from the COI's treating site only
(as intake's `PatientEnrolled` told this service; NotFound, as if the batch did not exist, to
any other site) and names the treating site in its payload. A batch's release record is read
by the sites `readers` names (this QC site, the batch's manufacturing site, the COI's
treating site) and auditors; NotFound to any other site.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from v2v_platform import limits
from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.errors import NotFound, Refused
from v2v_platform.esign import ESigner, InMemorySignerStore, SignatureRequest, SignerStore
from v2v_platform.scope import Scope
from v2v_platform.service_application import (
    CLOCK_SKEW,
    MAX_ATTEMPTS,
    ServiceApplication,
    UnpublishedRecords,
    utc_now,
)
from v2v_release.domain.batch_release import BatchRelease, Sign, release_id
from v2v_release.domain.specification import ReleaseSpecification, SpecificationCatalog
from v2v_release.domain.values import BatchFact, Correction, QcReport, parse_batch_id
from v2v_release.ports import NoReleaseFacts, ReleaseFacts
from v2v_release.views import BatchReleaseView, RecordedResultView

Decide = Callable[[BatchRelease, BatchFact, Sign, datetime, Attribution], None]
QP = "qp"
PHYSICIAN = "physician"


class ReleaseApplication(ServiceApplication[UnpublishedRecords]):
    """Release records nothing outside a chain: it is built without unpublished records."""

    context = "release"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        facts: ReleaseFacts | None = None,
        signer_store: SignerStore | None = None,
        specifications: SpecificationCatalog | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
    ) -> None:
        super().__init__(
            env, site_id=site_id, clock=clock, max_attempts=max_attempts, clock_skew=clock_skew
        )
        self.facts: ReleaseFacts = facts or NoReleaseFacts()
        self.esigner = ESigner(signer_store or InMemorySignerStore(), clock)
        self.specifications = specifications or SpecificationCatalog()

    # results

    def record_qc_result(
        self, batch_id: str, report: QcReport, correction: Correction | None, by: Attribution
    ) -> RecordedResultView:
        by = self.check_local(by)
        report = replace(report, result_at=self.when(report.result_at, "result_at"))

        def attempt() -> RecordedResultView:
            release = self._release_for(self._fact(batch_id), by)
            result, failure_id = release.record_result(report, correction, by)
            self.save(release)
            return RecordedResultView.of(result, release.pending_tests, failure_id)

        return self.retrying(attempt)

    # decisions (signed by a qualified person)

    def certify_provisionally(
        self,
        batch_id: str,
        signature: SignatureRequest,
        by: Attribution,
        certified_at: datetime | None = None,
    ) -> BatchReleaseView:
        decision = BatchRelease.certify_provisionally
        return self._decide(batch_id, signature, by, decision, certified_at, "certified_at")

    def certify_finally(
        self,
        batch_id: str,
        signature: SignatureRequest,
        by: Attribution,
        certified_at: datetime | None = None,
    ) -> BatchReleaseView:
        decision = BatchRelease.certify_finally
        return self._decide(batch_id, signature, by, decision, certified_at, "certified_at")

    def reject(
        self,
        batch_id: str,
        reason: str,
        signature: SignatureRequest,
        by: Attribution,
        rejected_at: datetime | None = None,
    ) -> BatchReleaseView:
        limits.check_free_text(reason, "reason")
        because = by.because(reason.strip())
        return self._decide(
            batch_id, signature, because, BatchRelease.reject, rejected_at, "rejected_at"
        )

    def justify_oos_release(
        self,
        batch_id: str,
        justification: str,
        signature: SignatureRequest,
        by: Attribution,
        justified_at: datetime | None = None,
    ) -> BatchReleaseView:
        because = by.because(limits.check_free_text(justification, "justification").strip())
        decision = BatchRelease.justify_oos
        return self._decide(batch_id, signature, because, decision, justified_at, "justified_at")

    # the treating physician's acceptance (from the treating site)

    def accept_oos_release(
        self,
        batch_id: str,
        signature: SignatureRequest,
        by: Attribution,
        accepted_at: datetime | None = None,
    ) -> BatchReleaseView:
        limits.check_signature_request(signature)
        moment = self.when(accepted_at, "accepted_at")
        fact = self._fact(batch_id)
        treating_sites = [self.facts.treating_site(fact.coi)]  # [None] while unknown here
        Scope(by.site_id).require_related(treating_sites, f"batch {fact.batch_id}")
        treating_site = by.site_id  # related: the caller is the COI's treating site
        authored = self.authored(by)

        def attempt() -> BatchReleaseView:
            release = self._existing(fact.batch_id)
            sign = self._signer(by, signature, PHYSICIAN)
            release.accept_oos(fact, treating_site, sign, moment, authored)
            self.save(release)
            return BatchReleaseView.of(release, fact)

        return self.retrying(attempt)

    # queries

    def batch_release(self, batch_id: str, scope: Scope) -> BatchReleaseView:
        """The batch's release record, to its `readers` and auditors; NotFound to anyone
        else, as if unknown."""
        fact = self._fact(batch_id)
        scope.require_sees(self.readers(fact), f"batch {fact.batch_id}")
        release = self.find(BatchRelease, release_id(fact.batch_id))
        if release is None:  # nothing recorded yet: every test of its version is pending
            spec = self.specifications.in_force_at(fact.started_at)
            return BatchReleaseView.unrecorded(fact, spec)
        return BatchReleaseView.of(release, fact)

    def readers(self, fact: BatchFact) -> list[str | None]:
        """The sites that read a batch's release record (besides auditors): this QC site,
        the batch's manufacturing site and the COI's treating site (None while unknown)."""
        return [self.site_id, fact.manufacturing_site_id, self.facts.treating_site(fact.coi)]

    def list_specifications(self) -> list[ReleaseSpecification]:
        return list(self.specifications.newest_first)

    # helpers

    def _decide(
        self,
        batch_id: str,
        signature: SignatureRequest,
        by: Attribution,
        decision: Decide,
        given: datetime | None,
        field: str,
    ) -> BatchReleaseView:
        """Open the record if needed, apply the QP-signed `decision` made at `given` (its
        clinical time, named `field`; now when not given), save."""
        by = self.check_local(by)
        limits.check_signature_request(signature)
        moment = self.when(given, field)
        sign = self._signer(by, signature, QP)

        def attempt() -> BatchReleaseView:
            fact = self._fact(batch_id)
            release = self._release_for(fact, by)
            decision(release, fact, sign, moment, by)
            self.save(release)
            return BatchReleaseView.of(release, fact)

        return self.retrying(attempt)

    def _signer(self, by: Attribution, request: SignatureRequest, signing_role: str) -> Sign:
        def sign(record: Mapping[str, Any]) -> SignatureManifestation:
            return self.esigner.sign(by.site_id, request, signing_role, record)

        return sign

    def _fact(self, batch_id: str) -> BatchFact:
        canonical = parse_batch_id(batch_id)
        fact = self.facts.batch(canonical)
        if fact is None:
            raise NotFound(f"batch {canonical} is not known to release yet")
        return fact

    def _release_for(self, fact: BatchFact, by: Attribution) -> BatchRelease:
        """The batch's release record, opened (not yet saved) when there is none."""
        release = self.find(BatchRelease, release_id(fact.batch_id))
        if release is not None:
            return release
        spec = self.specifications.in_force_at(fact.started_at)
        return BatchRelease.open(fact, spec, by)

    def _existing(self, batch_id: str) -> BatchRelease:
        release = self.find(BatchRelease, release_id(batch_id))
        if release is None:
            raise Refused(f"batch {batch_id} has no release record: nothing to accept")
        return release
