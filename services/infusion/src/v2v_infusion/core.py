"""The core of the infusion application: wiring, the site check, times, persistence helpers.

See `application` for the commands and what the application guarantees.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from v2v_infusion.domain.acknowledgement import FailureAcknowledgement
from v2v_infusion.domain.product import ProductAtSite
from v2v_infusion.domain.values import Windows
from v2v_infusion.facts import InfusionFacts, NoFacts
from v2v_infusion.registers import InfusionRegisters
from v2v_infusion.views import ProductUnitView
from v2v_platform.attribution import Attribution
from v2v_platform.errors import Conflict, Forbidden, InvalidInput, NotFound
from v2v_platform.ids import Din, InvalidIdentifier
from v2v_platform.traced_application import TracedApplication

T = TypeVar("T")
AggregateT = TypeVar("AggregateT")
CLOCK_SKEW = timedelta(minutes=5)


class NotWired(RuntimeError):
    """Built without its registers or signer (e.g. by the relay): it cannot command."""


def utc_now() -> datetime:
    return datetime.now(UTC)


def parse_din(text: str) -> Din:
    try:
        return Din.parse(text.strip())
    except InvalidIdentifier as error:
        raise InvalidInput(str(error)) from None


class InfusionCore(TracedApplication):
    """Wiring, the site check, times and persistence helpers shared by the commands."""

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        registers: InfusionRegisters | None = None,
        site_id: str = "",
        facts: InfusionFacts | None = None,
        clock: Callable[[], datetime] = utc_now,
        windows: Windows | None = None,
        max_attempts: int = 200,
    ) -> None:
        super().__init__(env)
        self._registers = registers
        self.site_id = site_id
        self.facts: InfusionFacts = facts or NoFacts()
        self.clock = clock
        self.windows = windows or Windows()
        self.max_attempts = max_attempts

    @property
    def registers(self) -> InfusionRegisters:
        if self._registers is None:
            raise NotWired("the infusion application was built without its registers")
        return self._registers

    def _check_local(self, by: Attribution) -> None:
        """Infusion commands come from this treating site only."""
        if by.site_id != self.site_id:
            raise Forbidden(f"this service records infusions at {self.site_id}, not {by.site_id}")

    def _when(self, given: datetime | None, what: str) -> datetime:
        """The time a step happened: as given (not in the future), else now."""
        now = self.clock()
        if given is None:
            return now
        if given.tzinfo is None:
            raise InvalidInput(f"{what} must carry a time zone (UTC)")
        if given > now + CLOCK_SKEW:
            raise InvalidInput(f"{what} {given.isoformat()} is in the future")
        return given.astimezone(UTC)

    def _find(self, kind: type[AggregateT], aggregate_id: UUID) -> AggregateT | None:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
        if not isinstance(aggregate, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}")
        return aggregate

    def _unit_here(self, din: Din) -> ProductAtSite | None:
        return self._find(ProductAtSite, ProductAtSite.create_id(self.site_id, din.data))

    def _received(self, din_text: str) -> ProductAtSite:
        din = parse_din(din_text)
        unit = self._unit_here(din)
        if unit is None:
            raise NotFound(f"unit {din} has not been received at {self.site_id}")
        return unit

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for _ in range(self.max_attempts):
            try:
                return attempt()
            except IntegrityError:
                continue
        raise Conflict("too many concurrent changes; try again")

    def _acknowledgement(self, failure_id: str) -> FailureAcknowledgement | None:
        """This site's acknowledgement of the failure, if any."""
        ack_id = FailureAcknowledgement.create_id(self.site_id, failure_id)
        return self._find(FailureAcknowledgement, ack_id)

    def _unacknowledged(self, batch_id: str) -> list[str]:
        """Post-release failures of the batch not yet acknowledged at this site."""
        return [
            failure.failure_id
            for failure in self.facts.failures_of_batch(batch_id)
            if self._acknowledgement(failure.failure_id) is None
        ]

    def _view(self, unit: ProductAtSite) -> ProductUnitView:
        release = self.facts.release_of(unit.batch_id)
        unacknowledged = self._unacknowledged(unit.batch_id)
        return ProductUnitView.of(unit, release, unacknowledged, self.windows.fresh_product)
