"""The kernel every service's application builds on, written once.

A service has two eventsourcing applications:

- its *published* application (`ServiceApplication`), whose notification log is the outbox:
  every aggregate belongs to ONE chain of identity and every event carries that chain's COI
  (the Kafka key);
- its *unpublished records* (`UnpublishedRecords`, a service's `unpublished_records.py`):
  state that belongs to no chain (number sequences, slot calendars, unit listings, scans that
  name no valid COI). It has its own tables (PostgreSQL) or file (SQLite), never relayed.

Both get here: find/get by id (wrong kind -> NotFound), retry on optimistic-concurrency
conflicts (two writers of one aggregate version collide, the loser re-reads and tries again),
and the aggregate cache (`aggregate_cache`: a read applies only the events stored after the
cached version, so commands stay fast as a stream grows; V2V_AGGREGATE_CACHE_SIZE aggregates
per application, 0: none).
The published application also gets: the site it records for and the check that a command
comes from that site (and who acts within the input limits, `limits.check_attribution`), the
clock and clinical times (`when`: as given, never in the future beyond the allowed clock skew,
V2V_CLOCK_SKEW_SECONDS), the unpublished-records guard (a process that only relays is
built without them and cannot command: `NotWired`), and the attribution of events to the
authoring site (`authored`).

Identifiers from requests are parsed here too (`parse_din`, `parse_coi`, or the
`*_or_problem` forms when a malformed label must itself be recorded); a label is read as its
bounded echo (`limits.echo`), so no refusal repeats more than `MAX_LABEL_CHARS` of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, Repository
from eventsourcing.persistence import IntegrityError

from v2v_platform import aggregate_cache, limits, telemetry
from v2v_platform.attribution import Attribution, WindowOverride
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound
from v2v_platform.ids import Coi, Din, InvalidIdentifier, din_from_scan
from v2v_platform.limits import CLOCK_SKEW as CLOCK_SKEW  # re-exported: the default skew
from v2v_platform.traced_application import TracedApplication

T = TypeVar("T")
AggregateT = TypeVar("AggregateT")
RecordsT = TypeVar("RecordsT", bound="UnpublishedRecords")

MAX_ATTEMPTS = 200


class NotWired(RuntimeError):
    """The application was built without a dependency (e.g. by the relay): it cannot command."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_din(text: str) -> Din:
    """A DIN from a request, in any form a label carries (`v2v_platform.ids.din_from_scan`:
    DIN + flags, the Code 128 or DataMatrix data, the eye-readable form); InvalidInput naming
    the problem."""
    try:
        return din_from_scan(limits.echo(text))
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


def parse_coi(text: str) -> Coi:
    """A COI from a request; InvalidInput naming the problem."""
    try:
        return Coi.parse(limits.echo(text).strip())
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


def din_or_problem(text: str) -> tuple[Din | None, str]:
    """A scanned DIN (any form `parse_din` accepts), or None and why it is not one (for
    refusals that must be recorded)."""
    try:
        return din_from_scan(limits.echo(text)), ""
    except InvalidIdentifier as error:
        return None, str(error)


def coi_or_problem(text: str) -> tuple[Coi | None, str]:
    """A scanned COI, or None and why it is not one (for refusals that must be recorded)."""
    try:
        return Coi.parse(limits.echo(text).strip()), ""
    except InvalidIdentifier as error:
        return None, str(error)


def retrying(attempt: Callable[[], T], max_attempts: int = MAX_ATTEMPTS) -> T:
    """Run `attempt` (read, decide, save) again from a fresh read while another change wins."""
    for _ in range(max_attempts):
        try:
            return attempt()
        except IntegrityError:
            continue
    raise Conflict("too many concurrent changes; try again")


def cached_repository(app: Application[UUID]) -> Repository[UUID]:
    """The application's repository with the kernel's aggregate cache (V2V_AGGREGATE_CACHE_SIZE
    from its environment, which includes the process's; 0: none)."""
    size = aggregate_cache.cache_size(app.env)
    return aggregate_cache.construct_repository(app.events, app.snapshots, size)


def find(app: Application[UUID], kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
    """The aggregate, None when it does not exist; NotFound when it is of another kind."""
    try:
        aggregate: Any = app.repository.get(aggregate_id)
    except AggregateNotFoundError:
        return None
    if not isinstance(aggregate, kind):
        raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
    return aggregate


class UnpublishedRecords(Application[UUID]):
    """Base of a service's records that belong to no chain (never relayed to Kafka)."""

    def __init__(self, env: dict[str, str] | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
        super().__init__(env)
        self.max_attempts = max_attempts

    def construct_repository(self) -> Repository[UUID]:
        return cached_repository(self)

    def find(self, kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
        return find(self, kind, aggregate_id)

    def retrying(self, attempt: Callable[[], T]) -> T:
        return retrying(attempt, self.max_attempts)


class ServiceApplication(TracedApplication, Generic[RecordsT]):
    """Base of every service's published application (its notification log is the outbox).

    `context` names the service in messages ("intake", "infusion", ...); subclasses set it.
    """

    context = "v2v"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        site_id: str = "",
        unpublished: RecordsT | None = None,
        clock: Callable[[], datetime] = utc_now,
        max_attempts: int = MAX_ATTEMPTS,
        clock_skew: timedelta = CLOCK_SKEW,
    ) -> None:
        super().__init__(env)
        self.site_id = site_id
        self._unpublished = unpublished
        self.clock = clock
        self.max_attempts = max_attempts
        self.clock_skew = clock_skew  # a service's bootstrap passes settings.clock_skew

    @property
    def unpublished(self) -> RecordsT:
        """The unpublished records; NotWired in a process built only to relay."""
        if self._unpublished is None:
            raise NotWired(
                f"the {self.context} application was built without its unpublished records"
            )
        return self._unpublished

    # who acts

    def check_local(self, by: Attribution) -> Attribution:
        """`by`, when it acts for the site this service records for (with the current trace);
        Forbidden otherwise: the outbox relay signs every event with this site's key.
        InvalidInput when who acts exceeds the input limits."""
        limits.check_attribution(by)
        if by.site_id != self.site_id:
            raise Forbidden(
                f"this {self.context} service records for site {self.site_id}, not {by.site_id}"
            )
        if by.traceparent is None:
            return replace(by, traceparent=telemetry.current_traceparent())
        return by

    def authored(self, by: Attribution) -> Attribution:
        """`by`, as recorded (and signed) by this site: the envelope's site is the author;
        the acting site stays in the payload where the event names it. InvalidInput when who
        acts exceeds the input limits."""
        limits.check_attribution(by)
        return replace(by, site_id=self.site_id) if self.site_id else by

    # time

    def when(self, given: datetime | None, what: str) -> datetime:
        """The clinical time a step happened: as given (with a zone, not in the future beyond
        the clock skew, `clock_skew`), else now. InvalidInput names the field `what`.

        Every time a client gives goes through here."""
        now = self.clock()
        if given is None:
            return now
        return limits.check_not_future(given, now, self.clock_skew, what).astimezone(UTC)

    def check_override(self, override: WindowOverride | None, what: str) -> None:
        """A window override within the input limits, its signature not in the future."""
        limits.check_override(override, what)
        if override is not None:
            self.when(override.signature.signed_at, f"{what}.signature.signed_at")

    # persistence

    def construct_repository(self) -> Repository[UUID]:
        return cached_repository(self)

    def find(self, kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
        return find(self, kind, aggregate_id)

    def get(self, kind: type[AggregateT], aggregate_id: UUID, what: str) -> AggregateT:
        """The aggregate; NotFound("no such <what>: <id>") when it does not exist."""
        aggregate = self.find(kind, aggregate_id)
        if aggregate is None:
            raise NotFound(f"no such {what}: {aggregate_id}")
        return aggregate

    def retrying(self, attempt: Callable[[], T]) -> T:
        return retrying(attempt, self.max_attempts)

    def save_or_conflict(self, *aggregates: Any, what: str) -> None:
        """Save once; Conflict ("<what> was changed concurrently") when another change won."""
        try:
            self.save(*aggregates)
        except IntegrityError:
            raise Conflict(f"{what} was changed concurrently; retry") from None
