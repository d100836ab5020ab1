"""The release application: commands and queries over plain values.

Methods take plain values plus the acting `Attribution`, raise `DomainError`s and return the
plain values of `views`. The release record of a batch is opened by the first command for it,
from what release knows of the batch from manufacturing's events (`BatchFacts`, its own
projection); the specification version is the one in force when the batch started.

Decisions are e-signed: the record named in the events proto is signed by `ESigner` (which
re-authenticates the signer against this service's signer store) and the manifestation is
stored with the decision. Every change is saved under optimistic concurrency and retried from
a fresh read when another change won the race (two first commands for a batch collide on the
record's id derived from the batch id).

Events are authored by this service's site (which signs them on Kafka): QC commands come from
this site only; the treating physician's acceptance names the treating site in its payload.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from v2v_platform.attribution import Attribution, SignatureManifestation
from v2v_platform.errors import Conflict, Forbidden, NotFound, Refused
from v2v_platform.esign import ESigner, InMemorySignerStore, SignatureRequest, SignerStore
from v2v_platform.traced_application import TracedApplication
from v2v_release.domain.batch_release import BatchRelease, Sign, release_id
from v2v_release.domain.specification import ReleaseSpecification, SpecificationCatalog
from v2v_release.domain.values import (
    BatchFact,
    Correction,
    QcReport,
    parse_batch_id,
)
from v2v_release.views import BatchReleaseView, RecordedResultView

T = TypeVar("T")
Decide = Callable[[BatchRelease, BatchFact, Sign, datetime, Attribution], None]
QP = "qp"
PHYSICIAN = "physician"


class BatchFacts(Protocol):
    """What release knows from manufacturing's and intake's events (its own projection)."""

    def batch(self, batch_id: str) -> BatchFact | None: ...
    def treating_site(self, coi: str) -> str | None: ...


class NoBatchFacts:
    """Knows no batch (for processes that only relay)."""

    def batch(self, batch_id: str) -> BatchFact | None:
        return None

    def treating_site(self, coi: str) -> str | None:
        return None


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReleaseApplication(TracedApplication):
    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        batch_facts: BatchFacts | None = None,
        signer_store: SignerStore | None = None,
        specifications: SpecificationCatalog | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = 50,
    ) -> None:
        super().__init__(env)
        self.site_id = site_id
        self.batch_facts: BatchFacts = batch_facts or NoBatchFacts()
        self.esigner = ESigner(signer_store or InMemorySignerStore(), clock)
        self.specifications = specifications or SpecificationCatalog()
        self.clock = clock
        self.max_attempts = max_attempts

    # results

    def record_qc_result(
        self, batch_id: str, report: QcReport, correction: Correction | None, by: Attribution
    ) -> RecordedResultView:
        self._check_local(by)

        def attempt() -> RecordedResultView:
            release = self._release_for(self._fact(batch_id), by)
            result, failure_id = release.record_result(report, correction, by)
            self.save(release)
            return RecordedResultView.of(result, release.pending_tests, failure_id)

        return self._retrying(attempt)

    # decisions (signed by a qualified person)

    def certify_provisionally(
        self, batch_id: str, signature: SignatureRequest, by: Attribution
    ) -> BatchReleaseView:
        return self._decide(batch_id, signature, by, BatchRelease.certify_provisionally)

    def certify_finally(
        self, batch_id: str, signature: SignatureRequest, by: Attribution
    ) -> BatchReleaseView:
        return self._decide(batch_id, signature, by, BatchRelease.certify_finally)

    def reject(
        self, batch_id: str, reason: str, signature: SignatureRequest, by: Attribution
    ) -> BatchReleaseView:
        return self._decide(batch_id, signature, by.because(reason.strip()), BatchRelease.reject)

    def justify_oos_release(
        self, batch_id: str, justification: str, signature: SignatureRequest, by: Attribution
    ) -> BatchReleaseView:
        because = by.because(justification.strip())
        return self._decide(batch_id, signature, because, BatchRelease.justify_oos)

    # the treating physician's acceptance (from the treating site)

    def accept_oos_release(
        self, batch_id: str, signature: SignatureRequest, by: Attribution
    ) -> BatchReleaseView:
        fact = self._fact(batch_id)
        treating_site = self.batch_facts.treating_site(fact.coi)
        if treating_site is None:
            raise Refused(f"the treating site of COI {fact.coi} is not known yet")
        if by.site_id != treating_site:
            raise Forbidden(
                f"COI {fact.coi} is treated at {treating_site}; {by.site_id} cannot accept"
                " its OOS release"
            )
        authored = replace(by, site_id=self.site_id)

        def attempt() -> BatchReleaseView:
            release = self._existing(fact.batch_id)
            sign = self._signer(by, signature, PHYSICIAN)
            release.accept_oos(fact, treating_site, sign, self.clock(), authored)
            self.save(release)
            return BatchReleaseView.of(release, fact)

        return self._retrying(attempt)

    # queries

    def batch_release(self, batch_id: str, visible_to: str | None = None) -> BatchReleaseView:
        """The batch's release record. `visible_to` = a treating site that may read only the
        batches of COIs treated there (QC sites and auditors read every batch: None)."""
        fact = self._fact(batch_id)
        if visible_to is not None and self.batch_facts.treating_site(fact.coi) != visible_to:
            raise NotFound(f"batch {batch_id} is not visible to site {visible_to}")
        release = self._find(release_id(fact.batch_id))
        if release is None:  # nothing recorded yet: every test of its version is pending
            spec = self.specifications.in_force_at(fact.started_at)
            return BatchReleaseView.unrecorded(fact, spec)
        return BatchReleaseView.of(release, fact)

    def list_specifications(self) -> list[ReleaseSpecification]:
        return list(self.specifications.newest_first)

    # helpers

    def _decide(
        self, batch_id: str, signature: SignatureRequest, by: Attribution, decision: Decide
    ) -> BatchReleaseView:
        """Open the record if needed, apply the QP-signed `decision`, save."""
        self._check_local(by)
        sign = self._signer(by, signature, QP)

        def attempt() -> BatchReleaseView:
            fact = self._fact(batch_id)
            release = self._release_for(fact, by)
            decision(release, fact, sign, self.clock(), by)
            self.save(release)
            return BatchReleaseView.of(release, fact)

        return self._retrying(attempt)

    def _signer(self, by: Attribution, request: SignatureRequest, signing_role: str) -> Sign:
        def sign(record: Mapping[str, Any]) -> SignatureManifestation:
            return self.esigner.sign(by.site_id, request, signing_role, record)

        return sign

    def _fact(self, batch_id: str) -> BatchFact:
        canonical = parse_batch_id(batch_id)
        fact = self.batch_facts.batch(canonical)
        if fact is None:
            raise NotFound(f"batch {canonical} is not known to release yet")
        return fact

    def _release_for(self, fact: BatchFact, by: Attribution) -> BatchRelease:
        """The batch's release record, opened (not yet saved) when there is none."""
        release = self._find(release_id(fact.batch_id))
        if release is not None:
            return release
        spec = self.specifications.in_force_at(fact.started_at)
        return BatchRelease.open(fact, spec, by)

    def _existing(self, batch_id: str) -> BatchRelease:
        release = self._find(release_id(batch_id))
        if release is None:
            raise Refused(f"batch {batch_id} has no release record: nothing to accept")
        return release

    def _check_local(self, by: Attribution) -> None:
        if by.site_id != self.site_id:
            raise Forbidden(f"this service records release at {self.site_id}, not {by.site_id}")

    def _find(self, aggregate_id: UUID) -> BatchRelease | None:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, BatchRelease):
            raise NotFound(f"{aggregate_id} is not a batch release")
        return aggregate

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("too many concurrent changes; try again")
