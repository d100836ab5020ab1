"""The reads both APIs serve, with the caller's `Scope` applied: a site reads the chains it
is related to (its site is among the chain's `sites`, the sites its relationship facts name:
chain/relationships.py), an auditor reads every chain; a chain the caller may not read is
reported exactly like a chain that does not exist. KPIs are aggregated over the chains the
caller reads (an auditor's: the consortium's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from v2v_platform.errors import InvalidInput, NotFound
from v2v_platform.scope import Scope
from v2v_projection.chain.kpis import summarize
from v2v_projection.chain_projection import ChainProjection

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@dataclass(frozen=True)
class ChainFilter:
    stage: str = ""
    site_id: str = ""
    has_alerts: bool | None = None
    updated_since: datetime | None = None

    def accepts(self, view: dict[str, Any]) -> bool:
        if self.stage and view["stage"] != self.stage:
            return False
        if self.site_id and self.site_id not in view["sites"]:
            return False
        if self.has_alerts is not None and bool(view["alerts"]) != self.has_alerts:
            return False
        since = self.updated_since
        return since is None or datetime.fromisoformat(view["updated_at"]) >= since


@dataclass(frozen=True)
class Page:
    chains: list[dict[str, Any]]
    next_after: str


def aware(moment: datetime | None, name: str) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        raise InvalidInput(f"{name} needs a time zone, e.g. 2025-03-01T08:00:00Z")
    return moment


def page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE:
        raise InvalidInput(f"page size must be between 1 and {MAX_PAGE}, got {requested}")
    return requested or DEFAULT_PAGE


def summary(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "coi": view["coi"],
        "stage": view["stage"],
        "treating_site_id": view["treating_site_id"],
        "sites": view["sites"],
        "updated_at": view["updated_at"],
        "alert_count": len(view["alerts"]),
    }


class ChainQueries:
    def __init__(self, projection: ChainProjection) -> None:
        self.projection = projection

    def chain(self, scope: Scope, coi: str) -> dict[str, Any]:
        view, what = self.projection.chain(coi.strip()), f"chain {coi!r}"
        if view is None:
            raise NotFound(f"no {what} is visible to site {scope.site_id}")
        scope.require_sees(view["sites"], what)
        return view

    def custody(self, scope: Scope, coi: str) -> list[dict[str, Any]]:
        return list(self.chain(scope, coi)["units"])

    def readable(self, scope: Scope) -> list[dict[str, Any]]:
        return [view for view in self.projection.chains() if scope.sees(view["sites"])]

    def list_chains(
        self, scope: Scope, wanted: ChainFilter, size: int = 0, after: str = ""
    ) -> Page:
        limit = page_size(size)
        aware(wanted.updated_since, "updated_since")
        views = self.readable(scope)
        matching = [v for v in views if v["coi"] > after and wanted.accepts(v)]
        page = matching[:limit]
        next_after = page[-1]["coi"] if len(matching) > limit else ""
        return Page([summary(view) for view in page], next_after)

    def alerts(
        self,
        scope: Scope,
        kind: str = "",
        since: datetime | None = None,
        coi: str = "",
    ) -> list[dict[str, Any]]:
        aware(since, "since")
        views = [self.chain(scope, coi)] if coi else self.readable(scope)
        found = [
            {**alert, "coi": view["coi"]}
            for view in views
            for alert in view["alerts"]
            if (not kind or alert["kind"] == kind)
            and (since is None or datetime.fromisoformat(alert["at"]) >= since)
        ]
        return sorted(found, key=lambda a: (a["at"], a["coi"], a["event_id"]))

    def kpis(self, scope: Scope) -> dict[str, Any]:
        """KPIs over the chains the caller reads: per-site figures of a handful of chains
        describe patients, and other sites' volumes are theirs to share."""
        if scope.sees_everything:
            return self.projection.kpis()
        return summarize(self.readable(scope))
