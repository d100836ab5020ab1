"""Who is calling and what they may see: one type for every service's reads and acts.

A `Scope` is built by an adapter from the verified caller (certificate or site token), never
from request fields. Applications ask it two questions:

- `sees(related_sites)`: may the caller read a record related to these sites (the sites that
  verified facts relate to the record: enrolling, treating, manufacturing, origin,
  destination...)? Sites with a role in `reads_all` (by default the auditor) read everything.
- `require_sees(related_sites, what)`: the same, raising NotFound: a record the caller may not
  read is reported exactly like one that does not exist (no oracle for guessed COIs).

Acting is narrower: a service records for its own site only (`ServiceApplication.
check_local`); `acts_for(site)` says whether the caller is that site. A site that acts on a
COI's records at another site's service (books a slot, accepts an OOS release, scans a
shipment) must itself be related to them: `require_related(related_sites, what)` (NotFound,
as if absent; `reads_all` grants no acting). The declared policy of each method and route
is `v2v_platform.access_policy`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from v2v_platform.auth.identity import CallerIdentity, Role
from v2v_platform.errors import NotFound

AUDITORS = frozenset({Role.AUDITOR})


@dataclass(frozen=True)
class Scope:
    site_id: str
    roles: frozenset[Role] = frozenset()
    reads_all: frozenset[Role] = AUDITORS

    @classmethod
    def of(cls, caller: CallerIdentity, reads_all: frozenset[Role] = AUDITORS) -> Scope:
        return cls(caller.site_id, frozenset(caller.roles), reads_all)

    @property
    def sees_everything(self) -> bool:
        return not self.roles.isdisjoint(self.reads_all)

    def has(self, role: Role) -> bool:
        return role in self.roles

    def acts_for(self, site_id: str) -> bool:
        return self.site_id == site_id

    def sees(self, related_sites: Iterable[str | None]) -> bool:
        return self.sees_everything or self.site_id in set(related_sites)

    def relates_to(self, related_sites: Iterable[str | None]) -> bool:
        return self.site_id in set(related_sites)

    def require_related(self, related_sites: Iterable[str | None], what: str) -> None:
        """Raise NotFound unless the caller itself is one of `related_sites` (to act)."""
        if not self.relates_to(related_sites):
            raise NotFound(f"no {what} is visible to site {self.site_id}")

    def require_sees(self, related_sites: Iterable[str | None], what: str) -> None:
        if not self.sees(related_sites):
            raise NotFound(f"no {what} is visible to site {self.site_id}")
